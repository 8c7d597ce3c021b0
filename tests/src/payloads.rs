//! What ir-notify sends, checked against each channel's own definition, so that a local mock
//! refuses what the real service refuses:
//! - Jira: the Atlassian Document Format JSON Schema (`../shared/schemas/adf-schema-*.json`) for
//!   descriptions and comments, and Jira's field limits (summary ≤ 255 characters, labels
//!   without spaces);
//! - PagerDuty: the Events API v2 request schema of PagerDuty's OpenAPI document
//!   (`../shared/schemas/pagerduty-events-v2-openapiv3.json`) and the documented limits it does
//!   not encode (a trigger has a payload, `summary` ≤ 1,024 characters, `dedup_key` ≤ 255);
//! - Slack: Block Kit's documented limits (≤ 50 blocks; header text 1–150 characters; section
//!   text 1–3,000 characters, or 1–10 fields of 1–2,000; context 1–10 elements; no text object
//!   empty).
//!
//! Without `../shared` the two schema checks print a loud SKIPPED line once and the documented
//! limits are still checked. [`strict`] wraps a wiremock response so that a mock answers an
//! invalid body with 400, as the service would.

use std::sync::OnceLock;

use serde_json::{json, Value};
use wiremock::{Request, Respond, ResponseTemplate};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// `POST /rest/api/3/issue` (create) or `…/comment`.
    Jira,
    PagerDuty,
    Slack,
}

fn schema(file: &str, root: fn(Value) -> Value) -> Option<jsonschema::Validator> {
    let doc = crate::shared::json("payload schema checks", &format!("schemas/{file}"))?;
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .build(&root(doc));
    Some(validator.unwrap_or_else(|e| panic!("{file} does not compile: {e}")))
}

fn adf() -> Option<&'static jsonschema::Validator> {
    static ADF: OnceLock<Option<jsonschema::Validator>> = OnceLock::new();
    ADF.get_or_init(|| {
        schema("adf-schema-57.7.22-full.json", |mut doc| {
            // Draft-04 in its `$schema`; nothing in it differs under draft 7 but the keyword name.
            doc.as_object_mut().map(|o| o.remove("$schema"));
            doc
        })
    })
    .as_ref()
}

fn pagerduty_schema() -> Option<&'static jsonschema::Validator> {
    static PD: OnceLock<Option<jsonschema::Validator>> = OnceLock::new();
    PD.get_or_init(|| {
        schema("pagerduty-events-v2-openapiv3.json", |doc| {
            // The enqueue request body, with the document's components for its `$ref`s.
            let mut body = doc["paths"]["/enqueue"]["post"]["requestBody"]["content"]
                ["application/json"]["schema"]
                .clone();
            body["components"] = doc["components"].clone();
            body
        })
    })
    .as_ref()
}

fn schema_errors(validator: Option<&jsonschema::Validator>, what: &str, v: &Value) -> Vec<String> {
    validator
        .map(|s| {
            s.iter_errors(v)
                .map(|e| format!("{what}: {e} at {}", e.instance_path))
                .collect()
        })
        .unwrap_or_default()
}

fn chars(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}

/// Every way `body` breaks `channel`'s definition (empty when it is valid).
pub fn violations(channel: Channel, body: &Value) -> Vec<String> {
    match channel {
        Channel::Jira => jira(body),
        Channel::PagerDuty => pagerduty(body),
        Channel::Slack => slack(body),
    }
}

fn jira(body: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    if let Some(doc) = body.get("body") {
        errors.extend(schema_errors(adf(), "comment body (ADF)", doc));
    } else if let Some(fields) = body.get("fields") {
        errors.extend(schema_errors(
            adf(),
            "description (ADF)",
            &fields["description"],
        ));
        let summary = chars(&fields["summary"]);
        if summary == 0 || summary > 255 {
            errors.push(format!("summary of {summary} characters (1–255)"));
        }
        for label in fields["labels"].as_array().into_iter().flatten() {
            let l = label.as_str().unwrap_or_default();
            if l.is_empty() || l.contains(char::is_whitespace) || l.chars().count() > 255 {
                errors.push(format!(
                    "label `{l}`: Jira labels are 1–255 characters, no spaces"
                ));
            }
        }
    } else {
        errors.push("neither a comment (`body`) nor an issue (`fields`)".into());
    }
    errors
}

fn pagerduty(body: &Value) -> Vec<String> {
    let mut errors = schema_errors(pagerduty_schema(), "Events v2", body);
    if chars(&body["dedup_key"]) > 255 {
        errors.push("dedup_key longer than 255 characters".into());
    }
    if body["event_action"] == "trigger" {
        let payload = &body["payload"];
        if !payload.is_object() {
            errors.push("a trigger needs a payload".into());
        }
        let summary = chars(&payload["summary"]);
        if summary == 0 || summary > 1024 {
            errors.push(format!("payload.summary of {summary} characters (1–1,024)"));
        }
        if chars(&payload["source"]) == 0 {
            errors.push("payload.source is empty".into());
        }
    } else if chars(&body["dedup_key"]) == 0 {
        errors.push(format!("{} needs a dedup_key", body["event_action"]));
    }
    errors
}

/// A Block Kit text object: `plain_text` or `mrkdwn`, 1–`max` characters.
fn text_object(at: &str, t: &Value, max: usize, errors: &mut Vec<String>) {
    if !matches!(t["type"].as_str(), Some("plain_text" | "mrkdwn")) {
        errors.push(format!("{at}: text object of type {}", t["type"]));
    }
    let n = chars(&t["text"]);
    if n == 0 || n > max || t["text"].as_str().is_some_and(|s| s.trim().is_empty()) {
        errors.push(format!("{at}: text of {n} characters (1–{max}, not blank)"));
    }
}

fn slack(body: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let blocks = body["blocks"].as_array().cloned().unwrap_or_default();
    if blocks.len() > 50 {
        errors.push(format!("{} blocks (at most 50)", blocks.len()));
    }
    if chars(&body["text"]) > 40_000 {
        errors.push("text longer than 40,000 characters".into());
    }
    for (i, b) in blocks.iter().enumerate() {
        let at = format!("blocks[{i}] ({})", b["type"]);
        match b["type"].as_str() {
            Some("header") => text_object(&at, &b["text"], 150, &mut errors),
            Some("section") => section(&at, b, &mut errors),
            Some("context") => {
                let elements = b["elements"].as_array().cloned().unwrap_or_default();
                if elements.is_empty() || elements.len() > 10 {
                    errors.push(format!("{at}: {} elements (1–10)", elements.len()));
                }
                for (j, e) in elements.iter().enumerate() {
                    text_object(&format!("{at}.elements[{j}]"), e, 3000, &mut errors);
                }
            }
            Some("divider") => {}
            _ => errors.push(format!("{at}: a block type ir-notify does not send")),
        }
        if chars(&b["block_id"]) > 255 {
            errors.push(format!("{at}: block_id longer than 255 characters"));
        }
    }
    errors
}

fn section(at: &str, b: &Value, errors: &mut Vec<String>) {
    let fields = b["fields"].as_array();
    if b.get("text").is_none() && fields.is_none() {
        errors.push(format!("{at}: neither text nor fields"));
    }
    if let Some(t) = b.get("text") {
        text_object(at, t, 3000, errors);
    }
    if let Some(fields) = fields {
        if fields.is_empty() || fields.len() > 10 {
            errors.push(format!("{at}: {} fields (1–10)", fields.len()));
        }
        for (j, f) in fields.iter().enumerate() {
            text_object(&format!("{at}.fields[{j}]"), f, 2000, errors);
        }
    }
}

/// The channel a request to a local mock stands for: what ir-notify posts to Jira
/// (`/rest/api/3/issue…`), PagerDuty (`…/v2/enqueue`) or a Slack incoming webhook
/// (`/services/…`).
pub fn channel_of(r: &Request) -> Option<Channel> {
    let p = r.url.path();
    match () {
        _ if r.method != wiremock::http::Method::POST => None,
        _ if p.starts_with("/services/") => Some(Channel::Slack),
        _ if p.ends_with("/v2/enqueue") => Some(Channel::PagerDuty),
        _ if p.starts_with("/rest/api/3/issue") => Some(Channel::Jira),
        _ => None,
    }
}

/// Panics with the violations of every channel body `server` has received.
pub async fn assert_received_valid(server: &wiremock::MockServer) {
    for r in server.received_requests().await.unwrap_or_default() {
        if let Some(channel) = channel_of(&r) {
            let body = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            assert_valid(channel, &format!("POST {}", r.url.path()), &body);
        }
    }
}

/// Panics with every violation of `body` (named `what` in the message).
pub fn assert_valid(channel: Channel, what: &str, body: &Value) {
    let errors = violations(channel, body);
    assert!(
        errors.is_empty(),
        "{what} breaks {channel:?}'s definition:\n- {}\n{body:#}",
        errors.join("\n- ")
    );
}

/// A mock that answers `ok` to a valid body and 400 with the violations otherwise, as the real
/// service refuses an invalid request.
pub struct Strict {
    channel: Channel,
    ok: ResponseTemplate,
}

pub fn strict(channel: Channel, ok: ResponseTemplate) -> Strict {
    Strict { channel, ok }
}

impl Respond for Strict {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let errors = match serde_json::from_slice::<Value>(&request.body) {
            Ok(body) => violations(self.channel, &body),
            Err(e) => vec![format!("not JSON: {e}")],
        };
        if errors.is_empty() {
            self.ok.clone()
        } else {
            ResponseTemplate::new(400).set_body_json(json!({"errorMessages": errors}))
        }
    }
}
