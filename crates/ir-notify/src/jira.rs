//! A small Jira Cloud REST API v3 client: find the incident's ticket by label, create it, comment.

use ir_core::secrets::Secret;
use serde::Deserialize;

use crate::message::Message;
use crate::JiraConfig;

/// `{"email": "...", "api_token": "..."}` (an Atlassian API token for basic auth).
#[derive(Deserialize)]
struct Credentials {
    email: String,
    api_token: String,
}

pub struct JiraClient<'a> {
    http: &'a reqwest::Client,
    cfg: &'a JiraConfig,
    creds: Credentials,
}

#[derive(Deserialize)]
struct SearchResult {
    #[serde(default)]
    issues: Vec<IssueKey>,
}

#[derive(Deserialize)]
struct IssueKey {
    key: String,
}

async fn check(resp: reqwest::Response, what: &str) -> Result<reqwest::Response, String> {
    let status = resp.status();
    if status.is_success() {
        Ok(resp)
    } else {
        let text = resp.text().await.unwrap_or_default();
        Err(format!(
            "Jira {what}: HTTP {status}: {}",
            text.chars().take(200).collect::<String>()
        ))
    }
}

fn http_error(e: reqwest::Error) -> String {
    e.without_url().to_string()
}

impl<'a> JiraClient<'a> {
    pub fn new(
        http: &'a reqwest::Client,
        cfg: &'a JiraConfig,
        secret: &Secret,
    ) -> Result<JiraClient<'a>, String> {
        let creds: Credentials = serde_json::from_str(secret.expose()).map_err(|_| {
            format!(
                "secret {} is not JSON {{\"email\", \"api_token\"}}",
                cfg.credentials
            )
        })?;
        Ok(JiraClient { http, cfg, creds })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.base_url)
    }

    /// The ticket labelled with the incident id, if any.
    pub async fn find(&self, incident_id: &str) -> Result<Option<String>, String> {
        let jql = format!(
            "project = \"{}\" AND labels = \"{incident_id}\" ORDER BY created ASC",
            self.cfg.project
        );
        let resp = self
            .http
            .get(self.url("/rest/api/3/search/jql"))
            .basic_auth(&self.creds.email, Some(&self.creds.api_token))
            .query(&[
                ("jql", jql.as_str()),
                ("fields", "key"),
                ("maxResults", "1"),
            ])
            .send()
            .await
            .map_err(http_error)?;
        let found: SearchResult = check(resp, "search")
            .await?
            .json()
            .await
            .map_err(http_error)?;
        Ok(found.issues.into_iter().next().map(|i| i.key))
    }

    /// The ticket key and whether it was created now. `known` (from the state machine) wins;
    /// otherwise a ticket labelled with the incident id; otherwise a new one.
    pub async fn ensure_ticket(
        &self,
        known: Option<&str>,
        msg: &Message,
    ) -> Result<(String, bool), String> {
        if let Some(k) = known.filter(|k| !k.is_empty()) {
            return Ok((k.to_string(), false));
        }
        if let Some(k) = self.find(&msg.incident_id).await? {
            return Ok((k, false));
        }
        let resp = self
            .http
            .post(self.url("/rest/api/3/issue"))
            .basic_auth(&self.creds.email, Some(&self.creds.api_token))
            .json(&msg.jira_issue(&self.cfg.project, &self.cfg.issue_type))
            .send()
            .await
            .map_err(http_error)?;
        let created: IssueKey = check(resp, "create issue")
            .await?
            .json()
            .await
            .map_err(http_error)?;
        Ok((created.key, true))
    }

    pub async fn comment(&self, key: &str, msg: &Message) -> Result<(), String> {
        let resp = self
            .http
            .post(self.url(&format!("/rest/api/3/issue/{key}/comment")))
            .basic_auth(&self.creds.email, Some(&self.creds.api_token))
            .json(&msg.jira_comment())
            .send()
            .await
            .map_err(http_error)?;
        check(resp, "comment").await.map(|_| ())
    }
}
