//! Security Hub: the finding's workflow status follows the response (`BatchUpdateFindings`).
//!
//! | notification         | workflow status | note                                    |
//! |----------------------|-----------------|-----------------------------------------|
//! | `opened`             | `NOTIFIED`      | incident id, route, tier, ticket        |
//! | `approved`           | `RESOLVED`      | contained, approved by whom, ticket     |
//! |   (nothing contained) | (unchanged)    | reviewed by whom, left open             |
//! | `released`           | (unchanged)     | containment released, rejected by whom  |
//! | `review_timed_out`   | (unchanged)     | containment stays, nobody reviewed      |
//! | `failed`             | (unchanged)     | which step failed                       |
//!
//! The finding is addressed by its ASFF `Id` and `ProductArn`: for a Security Hub event, the
//! ones in the event; for a GuardDuty event, the copy GuardDuty's integration imports (Id = the
//! GuardDuty finding ARN, ProductArn `…::product/aws/guardduty`). Where that copy does not exist
//! (Security Hub off) the update is skipped, not failed. A dry-run response changes nothing,
//! so it does not move the workflow either. The call goes to the finding's own region.

/// `BatchUpdateFindings` on the account's hub in whichever region holds the finding.
pub const BATCH_UPDATE_FINDINGS: ir_core::permissions::Permission =
    ir_core::permissions::Permission::new(
        "securityhub:BatchUpdateFindings",
        "arn:{partition}:securityhub:*:{account}:hub/default",
    );

use crate::safe::{clean, FIELD_MAX};
use aws_sdk_securityhub::types::{
    AwsSecurityFindingIdentifier, NoteUpdate, WorkflowStatus, WorkflowUpdate,
};
use ir_core::actions::RecordStatus;
use ir_core::TriageDecision;

use crate::message::{Kind, NotifyRequest};
use crate::{ChannelReport, ChannelStatus};

/// Who the note says updated it (`UpdatedBy`).
pub const UPDATED_BY: &str = "aws-incident-response";
/// Security Hub's limit on a note's text.
const NOTE_MAX: usize = 512;

/// The update one notification makes to the finding: a new workflow status, if any, and a note.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingUpdate {
    pub id: String,
    pub product_arn: String,
    pub region: String,
    pub status: Option<WorkflowStatus>,
    pub note: String,
}

fn clip(s: String) -> String {
    if s.chars().count() <= NOTE_MAX {
        s
    } else {
        let mut t: String = s.chars().take(NOTE_MAX - 1).collect();
        t.push('…');
        t
    }
}

/// What `req` changes on its finding, or `None` where Security Hub is not told
/// (`approval_requested`, a failure before triage, a dry run).
pub fn finding_update(req: &NotifyRequest, ticket: Option<&str>) -> Option<FindingUpdate> {
    let d: &TriageDecision = req.decision.as_ref()?;
    if d.dry_run {
        return None;
    }
    let inc = &d.incident;
    let ticket = ticket
        .or(req.ticket.as_deref())
        .map(|t| format!(" Ticket {t}."))
        .unwrap_or_default();
    let who = req
        .review
        .as_ref()
        .map(|r| {
            // A Jira display name is outside text: cleaned like finding text.
            let name = clean(r.approver_name.as_deref().unwrap_or_default(), FIELD_MAX);
            if name.is_empty() {
                clean(&r.approver, FIELD_MAX)
            } else {
                name
            }
        })
        .unwrap_or_else(|| "an analyst".into());
    let contained = req
        .containment
        .iter()
        .any(|r| r.status == RecordStatus::Completed);
    let (status, note) = match req.kind {
        Kind::ApprovalRequested => return None,
        Kind::Opened => (
            Some(WorkflowStatus::Notified),
            format!(
                "Incident {} opened by automated response: route {}, tier {}.{ticket}",
                d.incident_id, d.route, d.tier
            ),
        ),
        // RESOLVED only when something was contained: an approved review of a response that
        // contained nothing (tier manual, no playbook) leaves the finding for people to resolve.
        Kind::Approved if contained => (
            Some(WorkflowStatus::Resolved),
            format!(
                "Incident {}: containment approved by {who}; resolved as contained.{ticket}",
                d.incident_id
            ),
        ),
        Kind::Approved => (
            None,
            format!(
                "Incident {}: reviewed by {who}; nothing was contained automatically, so the finding stays open.{ticket}",
                d.incident_id
            ),
        ),
        Kind::Released => (
            None,
            format!(
                "Incident {}: containment rejected by {who} and {}.{ticket}",
                d.incident_id,
                if ir_core::lease::kept_for_others(&req.containment) {
                    "kept, because other incidents about the resource rely on it"
                } else {
                    "released"
                }
            ),
        ),
        Kind::NoReview => (
            None,
            format!(
                "Incident {}: no review gate is deployed; the automated response ended here, for people to review.{ticket}",
                d.incident_id
            ),
        ),
        Kind::ReviewTimedOut => (
            None,
            format!(
                "Incident {}: no review before the gate timed out; containment stays, escalated.{ticket}",
                d.incident_id
            ),
        ),
        Kind::Failed => (
            None,
            format!(
                "Incident {}: the automated response failed at {}.{ticket}",
                d.incident_id,
                req.failure
                    .as_ref()
                    .map(|f| clean(f.state.as_deref().unwrap_or(&f.error), FIELD_MAX))
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "an unknown step".into())
            ),
        ),
    };
    let product_arn = inc.product_arn.clone().unwrap_or_else(|| {
        format!(
            "arn:{}:securityhub:{}::product/aws/guardduty",
            inc.partition, inc.region
        )
    });
    Some(FindingUpdate {
        id: inc.finding_key.clone(),
        product_arn,
        region: inc.region.clone(),
        status,
        note: clip(note),
    })
}

/// Sends `update` with `client` (re-pointed at the finding's region).
pub async fn apply(client: &aws_sdk_securityhub::Client, update: &FindingUpdate) -> ChannelReport {
    const NAME: &str = "securityhub";
    let client = if client.config().region().map(|r| r.as_ref()) == Some(update.region.as_str()) {
        client.clone()
    } else {
        aws_sdk_securityhub::Client::from_conf(
            client
                .config()
                .to_builder()
                .region(aws_sdk_securityhub::config::Region::new(
                    update.region.clone(),
                ))
                .build(),
        )
    };
    let identifier = AwsSecurityFindingIdentifier::builder()
        .id(&update.id)
        .product_arn(&update.product_arn)
        .build();
    let note = NoteUpdate::builder()
        .text(&update.note)
        .updated_by(UPDATED_BY)
        .build();
    let mut call = client
        .batch_update_findings()
        .finding_identifiers(identifier)
        .note(note);
    if let Some(status) = &update.status {
        call = call.workflow(WorkflowUpdate::builder().status(status.clone()).build());
    }
    match call.send().await {
        Ok(out) => match out.unprocessed_findings().first() {
            None => ChannelReport::new(
                NAME,
                ChannelStatus::Sent,
                match &update.status {
                    Some(s) => format!("workflow {}", s.as_str()),
                    None => "note added".to_string(),
                },
            ),
            Some(u) if u.error_code() == Some("FindingNotFound") => {
                ChannelReport::new(NAME, ChannelStatus::Skipped, "finding not in Security Hub")
            }
            Some(u) => ChannelReport::new(
                NAME,
                ChannelStatus::Failed,
                format!(
                    "{}: {}",
                    u.error_code().unwrap_or("error"),
                    u.error_message().unwrap_or_default()
                ),
            ),
        },
        Err(e) => ChannelReport::new(
            NAME,
            ChannelStatus::Failed,
            aws_sdk_securityhub::error::DisplayErrorContext(e).to_string(),
        ),
    }
}
