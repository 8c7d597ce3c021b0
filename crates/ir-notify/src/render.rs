//! The message rendered for each channel: SNS (subject + text), Slack (Block Kit), PagerDuty
//! Events API v2, and Jira (REST API v3, Atlassian Document Format). Every string of the
//! message is treated as finding-derived and goes through [`crate::safe`] here, whatever
//! cleaning the message had when it was built: Slack gets only escaped `plain_text`, Jira only
//! unmarked text nodes, PagerDuty a summary built from parsed fields.

use ir_core::incident::SeverityLabel;
use serde_json::{json, Value};

use crate::message::{Kind, Message, REPORTED};
use crate::safe::{clean, non_blank, slack_plain, truncate, DESCRIPTION_MAX, FIELD_MAX};

/// What a reader is told about the facts marked as the finding's.
const LEGEND: &str = "Text marked \"from the finding\" is what the finding reported: whoever raised the finding (or the attacker it describes) may have written it.";

/// An action line's bound (it may carry a step's detail and an AWS message).
const LINE_MAX: usize = 800;

impl Message {
    /// Plain text (SNS e-mail, logs of what was sent): our structure, each value cleaned.
    pub fn text(&self) -> String {
        let mut out = format!(
            "{}\n\n{}\n\n",
            clean(&self.headline, 2 * FIELD_MAX),
            clean(&self.summary, DESCRIPTION_MAX + 100)
        );
        for (k, v) in &self.facts {
            out.push_str(&format!(
                "{}: {}\n",
                clean(k, FIELD_MAX),
                clean(v, FIELD_MAX)
            ));
        }
        if !self.actions.is_empty() {
            out.push_str("\nActions:\n");
            for a in &self.actions {
                out.push_str(&format!("- {}\n", clean(a, LINE_MAX)));
            }
        }
        if let Some(c) = &self.call_to_action {
            out.push_str(&format!("\n{}\n", clean(c, LINE_MAX)));
        }
        out.push_str(&format!("\n{LEGEND}\n"));
        out
    }

    /// SNS subject: at most 100 characters, ASCII, no line breaks.
    pub fn sns_subject(&self) -> String {
        let ascii: String = clean(&self.headline, 2 * FIELD_MAX)
            .chars()
            .map(|c| if c.is_ascii() { c } else { ' ' })
            .collect();
        truncate(&clean(&ascii, 100), 100).replace('…', ".")
    }

    /// Slack incoming-webhook payload (Block Kit). Every text object is `plain_text` without
    /// emoji codes and with `&`, `<`, `>` escaped: nothing in it can mention, link or format.
    pub fn slack(&self) -> Value {
        let headline = non_blank(&self.headline).unwrap_or("Incident response");
        let fields: Vec<Value> = self
            .facts
            .iter()
            .take(10)
            .map(|(k, v)| slack_plain(&format!("{}: {}", clean(k, FIELD_MAX), v), 2000))
            .collect();
        let mut blocks = vec![json!({"type": "header", "text": slack_plain(headline, 150)})];
        if non_blank(&self.summary).is_some() {
            blocks.push(json!({"type": "section", "text": slack_plain(&self.summary, 3000)}));
        }
        if !fields.is_empty() {
            blocks.push(json!({"type": "section", "fields": fields}));
        }
        if !self.actions.is_empty() {
            blocks.push(json!({"type": "section", "text": slack_lines(&self.actions, 3000)}));
        }
        if let Some(c) = self.call_to_action.as_deref().and_then(non_blank) {
            blocks.push(json!({"type": "section", "text": slack_plain(&format!("⚠ {c}"), 3000)}));
        }
        blocks.push(json!({"type": "context", "elements": [slack_plain(
            &format!("incident {} · {} · {LEGEND}", self.incident_id, self.kind.as_str()),
            3000,
        )]}));
        json!({"text": crate::safe::slack_text(headline, 300), "mrkdwn": false, "blocks": blocks})
    }

    /// PagerDuty Events API v2 event (`trigger`, or `resolve` when the incident ends). The
    /// summary is built from parsed fields, not the finding's free text (its title and
    /// description are data in `custom_details`).
    pub fn pagerduty(&self, routing_key: &str) -> Value {
        if self.kind.resolves() {
            return json!({"routing_key": routing_key, "event_action": "resolve",
                          "dedup_key": self.dedup_key});
        }
        let severity = match (self.kind, self.severity) {
            (Kind::Failed, _) | (_, SeverityLabel::Critical) => "critical",
            (_, SeverityLabel::High) => "error",
            (_, SeverityLabel::Medium) => "warning",
            _ => "info",
        };
        let resource = non_blank(&clean(&self.resource, FIELD_MAX))
            .unwrap_or("unknown resource")
            .to_string();
        let finding_type = clean(&self.finding_type, FIELD_MAX);
        let summary = format!(
            "[{}] {} on {}: {}",
            self.severity,
            non_blank(&finding_type).unwrap_or("finding"),
            resource,
            self.kind.as_str()
        );
        let mut details: serde_json::Map<String, Value> = self
            .facts
            .iter()
            .map(|(k, v)| (clean(k, FIELD_MAX), Value::String(clean(v, FIELD_MAX))))
            .collect();
        details.insert(
            "headline".into(),
            clean(&self.headline, 2 * FIELD_MAX).into(),
        );
        details.insert(
            "summary".into(),
            clean(&self.summary, DESCRIPTION_MAX + 100).into(),
        );
        let actions: Vec<String> = self.actions.iter().map(|a| clean(a, LINE_MAX)).collect();
        details.insert("actions".into(), json!(actions));
        details.insert("note".into(), LEGEND.into());
        json!({
            "routing_key": routing_key,
            "event_action": "trigger",
            "dedup_key": self.dedup_key,
            "payload": {
                "summary": truncate(&summary, 1024),
                "source": resource,
                "severity": severity,
                "component": resource,
                "group": clean(&self.account_id, FIELD_MAX),
                "class": finding_type,
                "custom_details": details,
            }
        })
    }

    /// Atlassian Document Format body: summary, facts table, actions list, call to action. Text
    /// from the message only ever becomes unmarked text nodes.
    pub fn adf(&self) -> Value {
        let para = |t: &str| block("paragraph", None, &clean(t, LINE_MAX));
        let mut content = vec![block(
            "heading",
            Some(json!({"level": 3})),
            &clean(&self.headline, 250),
        )];
        let summary = clean(&self.summary, DESCRIPTION_MAX + 100);
        if let Some(rest) = summary.strip_prefix(REPORTED) {
            // Our label in bold, the finding's words unmarked after it.
            let mut nodes =
                vec![json!({"type": "text", "text": REPORTED, "marks": [{"type": "strong"}]})];
            if let Some(text) = non_blank(rest) {
                nodes.push(json!({"type": "text", "text": text}));
            }
            content.push(json!({"type": "paragraph", "content": nodes}));
        } else if non_blank(&summary).is_some() {
            content.push(block("paragraph", None, &summary));
        }
        let rows: Vec<Value> = self
            .facts
            .iter()
            .map(|(k, v)| {
                json!({"type": "tableRow", "content": [
                    {"type": "tableHeader", "content": [para(k)]},
                    {"type": "tableCell", "content": [para(v)]}]})
            })
            .collect();
        if !rows.is_empty() {
            content.push(json!({"type": "table", "content": rows}));
        }
        if !self.actions.is_empty() {
            let items: Vec<Value> = self
                .actions
                .iter()
                .map(|a| json!({"type": "listItem", "content": [para(a)]}))
                .collect();
            content.push(json!({"type": "bulletList", "content": items}));
        }
        if let Some(c) = &self.call_to_action {
            content.push(json!({"type": "panel", "attrs": {"panelType": "warning"},
                                "content": [para(c)]}));
        }
        content.push(para(LEGEND));
        json!({"type": "doc", "version": 1, "content": content})
    }

    /// Jira create-issue request (REST API v3). The incident id is a label, which is how later
    /// updates and the approval webhook find the ticket.
    pub fn jira_issue(&self, project: &str, issue_type: &str) -> Value {
        json!({"fields": {
            "project": {"key": project},
            "issuetype": {"name": issue_type},
            "summary": clean(&self.headline, 250),
            "description": self.adf(),
            "labels": ["incident-response", self.incident_id,
                       format!("severity-{}", self.severity.to_string().to_ascii_lowercase())],
        }})
    }

    /// Jira add-comment request.
    pub fn jira_comment(&self) -> Value {
        json!({"body": self.adf()})
    }
}

/// Lines of text as one Slack `plain_text` object, one line each, within `max` characters.
fn slack_lines(lines: &[String], max: usize) -> Value {
    let text = crate::safe::slack_lines(lines, LINE_MAX, max);
    json!({"type": "plain_text", "text": text, "emoji": false})
}

/// An ADF block node (`paragraph`, `heading`) holding `text`; without a text node when `text`
/// is blank (a text node must have a character).
fn block(kind: &str, attrs: Option<Value>, text: &str) -> Value {
    let mut node = json!({"type": kind});
    if let Some(a) = attrs {
        node["attrs"] = a;
    }
    if non_blank(text).is_some() {
        node["content"] = json!([{"type": "text", "text": text}]);
    }
    node
}
