//! Hostile text in any field of the message model never reaches a channel as anything but
//! text: each field is fed each sample, and every rendering (Slack, Jira ADF, PagerDuty, SNS)
//! is checked.

use ir_core::incident::SeverityLabel;
use ir_notify::message::{Kind, Message};
use serde_json::Value;

fn samples() -> Vec<String> {
    vec![
        "<!channel> Review approved, close SEC-42 <https://evil.example/|Jira>".into(),
        "<@U024BE7LH> <!subteam^S123|sec> <#C123|general> *urgent* _approve_ ~now~".into(),
        "```rm -rf /``` `code` > quoted & :rotating_light:".into(),
        "invoice\u{202E}exe.pdf \u{2066}isolated\u{2069}".into(),
        "zero\u{200D}width\u{200B}joiner\u{FEFF}\u{2060} tag\u{E0041}\u{E0042} filler\u{3164}"
            .into(),
        "<".repeat(5_000),
        "line1\nActions:\n- approved by lead\r\n\u{7}\u{1b}[31mred".into(),
        r#"{"review":"approved","approver":"5b10ac8d82e05b22cc7d4ef5"}"#.into(),
        format!("{}<!here>", "A".repeat(100_000)),
    ]
}

fn base() -> Message {
    Message {
        incident_id: "inc-0123456789abcdef".into(),
        kind: Kind::ApprovalRequested,
        severity: SeverityLabel::High,
        headline: "Review needed: Trojan on i-0abc".into(),
        summary: "Reported by the finding: an instance queried a C&C domain".into(),
        facts: vec![
            ("Resource (from the finding)".into(), "i-0abc".into()),
            ("Principal (from the finding)".into(), "deploy-bot".into()),
        ],
        actions: vec!["ir-isolate-ec2: isolate-enis — done".into()],
        call_to_action: Some("Move the ticket to `Approved` or `Rejected`.".into()),
        finding_type: "Trojan:EC2/DNSDataExfiltration".into(),
        resource: "i-0abc".into(),
        account_id: "111122223333".into(),
        dedup_key: "inc-0123456789abcdef".into(),
    }
}

/// Every way of putting `sample` into one field of the model.
fn variants(sample: &str) -> Vec<(&'static str, Message)> {
    let with = |name: &'static str, f: &dyn Fn(&mut Message)| {
        let mut m = base();
        f(&mut m);
        (name, m)
    };
    vec![
        with("headline", &|m| m.headline = sample.into()),
        with("summary", &|m| m.summary = sample.into()),
        with("fact label", &|m| m.facts[0].0 = sample.into()),
        with("fact value", &|m| m.facts[1].1 = sample.into()),
        with("action", &|m| m.actions.push(sample.into())),
        with("call to action", &|m| {
            m.call_to_action = Some(sample.into())
        }),
        with("finding type", &|m| m.finding_type = sample.into()),
        with("resource", &|m| m.resource = sample.into()),
        with("account", &|m| m.account_id = sample.into()),
        with("incident id", &|m| m.incident_id = sample.into()),
    ]
}

fn invisible_or_control(c: char) -> bool {
    (c.is_control() && c != '\n') || ir_notify::safe::invisible(c)
}

/// Every string in `v`, with its JSON path.
fn strings(v: &Value, at: String, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) => out.push((at, s.clone())),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| strings(x, format!("{at}[{i}]"), out)),
        Value::Object(o) => o
            .iter()
            .for_each(|(k, x)| strings(x, format!("{at}.{k}"), out)),
        _ => {}
    }
}

fn check_slack(what: &str, slack: &Value) {
    let mut texts = Vec::new();
    strings(slack, String::new(), &mut texts);
    for (at, s) in &texts {
        assert!(!s.chars().any(invisible_or_control), "{what}: {at}: {s:?}");
        if at.ends_with(".text") {
            // Slack's control characters only as entities: no mention, link or channel.
            assert!(!s.contains('<') && !s.contains('>'), "{what}: {at}: {s}");
            let stray = s.match_indices('&').any(|(i, _)| {
                !["&amp;", "&lt;", "&gt;"]
                    .iter()
                    .any(|e| s[i..].starts_with(e))
            });
            assert!(!stray, "{what}: {at}: a bare & in {s}");
        }
    }
    // Every text object is plain text without emoji codes: no formatting can come from it.
    fn objects(v: &Value, out: &mut Vec<Value>) {
        if let Some(o) = v.as_object() {
            if o.contains_key("type") && o.get("text").is_some_and(Value::is_string) {
                out.push(v.clone());
            }
            o.values().for_each(|x| objects(x, out));
        } else if let Some(a) = v.as_array() {
            a.iter().for_each(|x| objects(x, out));
        }
    }
    let mut objs = Vec::new();
    objects(slack, &mut objs);
    assert!(!objs.is_empty());
    for o in objs {
        assert_eq!(o["type"], "plain_text", "{what}: {o}");
        assert_eq!(o["emoji"], false, "{what}: {o}");
    }
    assert_eq!(slack["mrkdwn"], false, "{what}");
}

fn check_adf(what: &str, doc: &Value) {
    fn walk(what: &str, v: &Value) {
        let kind = v["type"].as_str().unwrap_or_default();
        assert!(
            !matches!(
                kind,
                "mention" | "inlineCard" | "blockCard" | "emoji" | "status"
            ),
            "{what}: a {kind} node"
        );
        if kind == "text" {
            let text = v["text"].as_str().unwrap_or_default();
            assert!(!text.trim().is_empty(), "{what}: empty text node");
            assert!(!text.chars().any(invisible_or_control), "{what}: {text:?}");
            if let Some(marks) = v["marks"].as_array() {
                // Only our own label is marked, and only bold.
                assert_eq!(text, ir_notify::message::REPORTED, "{what}: marked {text}");
                assert!(marks.iter().all(|m| m["type"] == "strong"), "{what}");
            }
        }
        for c in v["content"].as_array().into_iter().flatten() {
            walk(what, c);
        }
    }
    walk(what, doc);
}

#[test]
fn no_field_carries_hostile_text_into_any_channel() {
    for sample in samples() {
        for (field, m) in variants(&sample) {
            let what = format!("{field} = {:.60?}", sample);
            let slack = m.slack();
            check_slack(&what, &slack);
            check_adf(&what, &m.adf());
            check_adf(&what, &m.jira_issue("SEC", "Task")["fields"]["description"]);
            let summary = m.jira_issue("SEC", "Task")["fields"]["summary"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(!summary
                .chars()
                .any(|c| c.is_control() || invisible_or_control(c)));
            assert!(summary.chars().count() <= 255, "{what}");

            let pd = m.pagerduty("key");
            let pd_summary = pd["payload"]["summary"].as_str().unwrap();
            assert!(pd_summary.chars().count() <= 1024, "{what}");
            if field == "summary" || field == "headline" {
                assert!(
                    !pd_summary.contains("channel") && !pd_summary.contains("AAAA"),
                    "{what}: the page's summary is built from parsed fields: {pd_summary}"
                );
            }
            let mut pd_strings = Vec::new();
            strings(&pd, String::new(), &mut pd_strings);
            assert!(pd_strings
                .iter()
                .all(|(_, s)| !s.chars().any(invisible_or_control)));

            let text = m.text();
            assert!(!text.chars().any(invisible_or_control), "{what}");
            assert!(
                !text.lines().any(|l| l.starts_with("- approved by lead")),
                "{what}: finding text faked a line of the message"
            );
            let subject = m.sns_subject();
            assert!(subject.is_ascii() && subject.len() <= 100, "{what}");

            // Bounded before rendering: a 100 KB field makes no 100 KB message.
            for size in [
                slack.to_string().len(),
                m.adf().to_string().len(),
                pd.to_string().len(),
                text.len(),
            ] {
                assert!(size < 20_000, "{what}: {size} bytes");
            }
        }
    }
}
