//! Evidence snapshots to the forensics account (`IR_FORENSICS_ACCOUNT_ID`).
//!
//! A new snapshot is `pending` for minutes to hours, and only a completed one can be shared or
//! copied, so sharing runs apart from the response: the preserve run starts an execution of the
//! response's state machine (`share-<incident>`, input `{"share_snapshots": ShareRequest}`;
//! [`ShareStarter`]) whose rounds call [`crate::Preserver::share`] every five minutes until
//! every snapshot is done, for a day at most.
//!
//! Per evidence snapshot of the latest manifest, in the account and Region where it was made:
//! - unencrypted: its create-volume permission is given to the forensics account;
//! - encrypted (with the account's default `aws/ebs` key, which cannot be shared, or a customer
//!   key the forensics account cannot use): copied once, re-encrypted with
//!   `IR_FORENSICS_KMS_KEY` (a key of the forensics account, `{region}` standing for the
//!   snapshot's Region: a multi-Region key), tagged `ir:copy-of`, and the copy is shared. The
//!   customer keys of the member account are never changed.
//!
//! Only snapshots tagged `ir:evidence=true` and `ir:incident-id=<this incident>` are shared,
//! whatever the manifest says. The outcome is an artifact of the evidence chain
//! (`snapshot-shares`), written when it changes.

use aws_sdk_ec2::types::{
    Filter, OperationType, ResourceType, Snapshot, SnapshotAttributeName, SnapshotState, Tag,
    TagSpecification,
};
use ir_core::audit::Outcome;
use ir_core::incident::Incident;
use ir_core::permissions::{resource, Permission};
use ir_core::ConfigError;
use serde::{Deserialize, Serialize};

use crate::EvidenceError;

/// Rounds of [`Preserver::share`] before it gives up on a snapshot that stays pending (the
/// state machine waits five minutes between rounds: a day).
pub const MAX_ROUNDS: u32 = 288;

/// KMS keys of any account: the snapshot's own key (EBS decrypts it for the copy) and the
/// forensics account's key (EBS re-encrypts with it); only through EC2.
const ANY_KEY: &str = "arn:{partition}:kms:*:*:key/*";

pub(crate) const PERMISSIONS: &[Permission] = &[
    // The share rounds: an execution of the response's own state machine.
    ir_core::sfn::START_EXECUTION,
    Permission::new("ec2:ModifySnapshotAttribute", resource::EC2_SNAPSHOT),
    Permission::new("ec2:CopySnapshot", resource::EC2_SNAPSHOT),
    Permission::new("ec2:CreateTags", resource::EC2_SNAPSHOT).when(
        "StringEquals",
        "ec2:CreateAction",
        "CopySnapshot",
    ),
    Permission::new("kms:DescribeKey", ANY_KEY),
    Permission::new("kms:CreateGrant", ANY_KEY).when(
        "StringLike",
        "kms:ViaService",
        "ec2.*.amazonaws.com",
    ),
    Permission::new("kms:Decrypt", ANY_KEY).when(
        "StringLike",
        "kms:ViaService",
        "ec2.*.amazonaws.com",
    ),
    Permission::new("kms:ReEncryptFrom", ANY_KEY).when(
        "StringLike",
        "kms:ViaService",
        "ec2.*.amazonaws.com",
    ),
    Permission::new("kms:ReEncryptTo", ANY_KEY).when(
        "StringLike",
        "kms:ViaService",
        "ec2.*.amazonaws.com",
    ),
    Permission::new("kms:GenerateDataKeyWithoutPlaintext", ANY_KEY).when(
        "StringLike",
        "kms:ViaService",
        "ec2.*.amazonaws.com",
    ),
];

/// Where evidence snapshots go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forensics {
    /// `IR_FORENSICS_ACCOUNT_ID`: 12 digits.
    pub account: String,
    /// `IR_FORENSICS_KMS_KEY`: key ARN in the forensics account, `{region}` allowed. Without
    /// it encrypted snapshots stay unshared (recorded).
    pub kms_key: Option<String>,
}

impl Forensics {
    /// `None` when `IR_FORENSICS_ACCOUNT_ID` is unset or empty.
    pub fn from_env() -> Result<Option<Forensics>, ConfigError> {
        let account = std::env::var("IR_FORENSICS_ACCOUNT_ID").unwrap_or_default();
        let account = account.trim();
        if account.is_empty() {
            return Ok(None);
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError::Invalid {
                name: "IR_FORENSICS_ACCOUNT_ID",
                value: account.into(),
                message: "expected a 12-digit account id".into(),
            });
        }
        let key = std::env::var("IR_FORENSICS_KMS_KEY").unwrap_or_default();
        let key = key.trim();
        let kms_key = if key.is_empty() {
            None
        } else if is_key_arn(key, account)
            && (!key.contains("{region}") || key.contains(":key/mrk-"))
        {
            Some(key.to_string())
        } else {
            return Err(ConfigError::Invalid {
                name: "IR_FORENSICS_KMS_KEY",
                value: key.into(),
                message: format!(
                    "expected a key ARN of account {account} (arn:<partition>:kms:<region>:{account}:key/<id>, or with {{region}} a multi-Region key/mrk-<id>): a copy under another account's key needs its ARN, not an alias"
                ),
            });
        };
        Ok(Some(Forensics {
            account: account.into(),
            kms_key,
        }))
    }

    /// The key for a snapshot in `region`.
    fn key_in(&self, region: &str) -> Option<String> {
        self.kms_key.as_ref().map(|k| k.replace("{region}", region))
    }
}

fn is_key_arn(arn: &str, account: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "kms"
        && !parts[3].is_empty()
        && parts[4] == account
        && parts[5]
            .strip_prefix("key/")
            .is_some_and(|id| !id.is_empty())
}

/// Starts the share rounds of an incident.
#[derive(Debug, Clone)]
pub struct ShareStarter {
    pub sfn: aws_sdk_sfn::Client,
    /// `IR_STATE_MACHINE_ARN`: the response's own state machine.
    pub state_machine_arn: String,
}

impl ShareStarter {
    /// Starts `share-<incident>`; an execution of that name (a repeat of the response) is left
    /// to do the work. Returns the execution ARN and `Succeeded` or `AlreadyDone`.
    pub async fn start(&self, incident: &Incident) -> Result<(String, Outcome), String> {
        let input = serde_json::json!({
            "share_snapshots": ShareRequest { incident: incident.clone(), round: 0 }
        });
        let name = format!("share-{}", incident.incident_id);
        ir_core::sfn::start_once(&self.sfn, &self.state_machine_arn, &name, input.to_string()).await
    }
}

/// What the state machine passes between rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareRequest {
    pub incident: Incident,
    #[serde(default)]
    pub round: u32,
}

/// A share round's input: the request, and (after the first round) the previous round's
/// output beside it, ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareInput {
    pub share_snapshots: ShareRequest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShareState {
    /// The forensics account may create volumes from `shared_snapshot_id`.
    Shared,
    /// The snapshot (or its copy) is not completed yet.
    Pending,
    /// Not shared, and it will not be: `detail` says why.
    Failed,
}

/// One evidence snapshot's way to the forensics account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotShare {
    pub snapshot_id: String,
    /// What the forensics account gets: the snapshot itself or its re-encrypted copy.
    pub shared_snapshot_id: Option<String>,
    pub state: ShareState,
    pub detail: String,
}

/// What a share round returns; `share_snapshots` is the next round's request while something
/// is pending.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareOutcome {
    pub incident_id: String,
    pub forensics_account: String,
    pub shares: Vec<SnapshotShare>,
    pub manifest_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share_snapshots: Option<ShareRequest>,
}

/// The artifact that records the shares.
pub const SHARES_ARTIFACT: &str = "snapshot-shares";

impl crate::Preserver {
    /// One share round where the snapshots live (their account, through the member role, and
    /// Region); the evidence record stays in this account's bucket.
    pub async fn share_where_they_live(
        &self,
        reach: &ir_core::member::Reach,
        input: ShareInput,
    ) -> Result<ShareOutcome, EvidenceError> {
        let req = input.share_snapshots;
        let place = ir_core::member::Place::of(&req.incident)?;
        let sdk = reach.sdk_for(&place, &req.incident.incident_id).await?;
        self.share(&ir_core::aws_client!(aws_sdk_ec2, &sdk), req)
            .await
    }

    /// One share round with `ec2` (the snapshots' account and Region): every evidence snapshot
    /// of the latest manifest, concurrently; the outcome recorded in the chain when it changed.
    pub async fn share(
        &self,
        ec2: &aws_sdk_ec2::Client,
        req: ShareRequest,
    ) -> Result<ShareOutcome, EvidenceError> {
        let inc = &req.incident;
        let Some(forensics) = &self.config.forensics else {
            return Ok(ShareOutcome {
                incident_id: inc.incident_id.clone(),
                forensics_account: String::new(),
                shares: vec![],
                manifest_key: None,
                share_snapshots: None,
            });
        };
        let store = crate::manifest::EvidenceStore {
            s3: &self.s3,
            config: &self.config,
        };
        let latest = store.latest(inc).await?;
        let snapshots = latest
            .as_ref()
            .map(|l| l.manifest.snapshots.clone())
            .unwrap_or_default();
        let sharer = Sharer {
            ec2,
            forensics,
            incident_id: &inc.incident_id,
            region: &inc.region,
        };
        let mut shares =
            futures::future::join_all(snapshots.iter().map(|s| sharer.share_one(&s.snapshot_id)))
                .await;
        let last_round = req.round + 1 >= MAX_ROUNDS;
        for s in shares.iter_mut().filter(|s| s.state == ShareState::Pending) {
            if last_round {
                s.state = ShareState::Failed;
                s.detail =
                    format!("still not completed after {MAX_ROUNDS} rounds: share it by hand");
            } else {
                // What changes from round to round stays out of the record (no new manifest
                // while nothing but progress changed).
                s.detail = "not completed yet".into();
            }
        }
        let manifest_key = match latest {
            Some(latest) => Some(
                self.record_shares(&store, inc, forensics, &shares, latest)
                    .await?,
            ),
            None => None,
        };
        let pending = shares.iter().any(|s| s.state == ShareState::Pending);
        Ok(ShareOutcome {
            incident_id: inc.incident_id.clone(),
            forensics_account: forensics.account.clone(),
            shares,
            manifest_key,
            share_snapshots: pending.then(|| ShareRequest {
                incident: req.incident.clone(),
                round: req.round + 1,
            }),
        })
    }

    /// The shares as an artifact of the chain: a new manifest only when they changed.
    async fn record_shares(
        &self,
        store: &crate::manifest::EvidenceStore<'_>,
        inc: &Incident,
        forensics: &Forensics,
        shares: &[SnapshotShare],
        latest: crate::manifest::Latest,
    ) -> Result<String, EvidenceError> {
        let value = serde_json::json!({
            "forensics_account": forensics.account,
            "kms_key": forensics.kms_key,
            "shares": shares,
        });
        let stored = store
            .put_artifact(
                inc,
                SHARES_ARTIFACT,
                &value,
                vec![
                    "ec2:DescribeSnapshots".into(),
                    "ec2:CopySnapshot".into(),
                    "ec2:ModifySnapshotAttribute".into(),
                ],
                chrono::Utc::now(),
                Some(&latest.manifest),
            )
            .await?;
        let mut artifacts: Vec<_> = latest
            .manifest
            .artifacts
            .iter()
            .filter(|a| a.name != SHARES_ARTIFACT)
            .cloned()
            .collect();
        artifacts.push(stored.entry);
        let (snapshots, gaps) = (
            latest.manifest.snapshots.clone(),
            latest.manifest.gaps.clone(),
        );
        let written = store
            .write_manifest(inc, artifacts, snapshots, gaps, Some(latest))
            .await?;
        Ok(written.key)
    }
}

/// An EC2 error: its code, and the whole message for the record.
fn ec2_error_code<E>(e: aws_sdk_ec2::error::SdkError<E>) -> (Option<String>, String)
where
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_ec2::error::ProvideErrorMetadata;
    let code = e.code().map(String::from);
    (code, aws_sdk_ec2::error::DisplayErrorContext(e).to_string())
}

/// Throttling, the limit on concurrent copies, service errors and errors without a code (a
/// timeout, a dropped connection) pass: tried again next round. Anything else is final.
fn failed_or_pending(
    snapshot_id: &str,
    shared: Option<&str>,
    (code, message): (Option<String>, String),
) -> SnapshotShare {
    let transient = matches!(
        code.as_deref(),
        Some(
            "RequestLimitExceeded"
                | "Throttling"
                | "ThrottlingException"
                | "ResourceLimitExceeded"
                | "SnapshotCopyLimitExceeded"
                | "InternalError"
                | "ServiceUnavailable"
                | "Unavailable"
        )
    ) || code.is_none();
    let state = if transient {
        ShareState::Pending
    } else {
        ShareState::Failed
    };
    outcome(snapshot_id, shared, state, message)
}

fn tag<'a>(s: &'a Snapshot, key: &str) -> Option<&'a str> {
    s.tags()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

fn outcome(
    snapshot_id: &str,
    shared: Option<&str>,
    state: ShareState,
    detail: impl Into<String>,
) -> SnapshotShare {
    SnapshotShare {
        snapshot_id: snapshot_id.into(),
        shared_snapshot_id: shared.map(String::from),
        state,
        detail: detail.into(),
    }
}

/// The EC2 side of sharing, in the snapshot's account and Region.
pub(crate) struct Sharer<'a> {
    pub ec2: &'a aws_sdk_ec2::Client,
    pub forensics: &'a Forensics,
    pub incident_id: &'a str,
    pub region: &'a str,
}

impl Sharer<'_> {
    /// One evidence snapshot: shared, its copy started or shared, or why not.
    pub async fn share_one(&self, snapshot_id: &str) -> SnapshotShare {
        let source = match self.describe(snapshot_id).await {
            Ok(s) => s,
            Err(e) => return failed_or_pending(snapshot_id, None, e),
        };
        if tag(&source, "ir:evidence") != Some("true")
            || tag(&source, "ir:incident-id") != Some(self.incident_id)
        {
            return outcome(
                snapshot_id,
                None,
                ShareState::Failed,
                "not tagged as evidence of this incident: not shared",
            );
        }
        if source.encrypted() == Some(true) {
            return self.share_copy(&source).await;
        }
        self.share_completed(snapshot_id, &source).await
    }

    async fn describe(&self, snapshot_id: &str) -> Result<Snapshot, (Option<String>, String)> {
        let out = self
            .ec2
            .describe_snapshots()
            .owner_ids("self")
            .snapshot_ids(snapshot_id)
            .send()
            .await
            .map_err(ec2_error_code)?;
        out.snapshots().first().cloned().ok_or_else(|| {
            (
                Some("InvalidSnapshot.NotFound".into()),
                format!("{snapshot_id} not found"),
            )
        })
    }

    /// Shares `snapshot` (the evidence snapshot or its copy) once it is completed.
    async fn share_completed(&self, source_id: &str, snapshot: &Snapshot) -> SnapshotShare {
        let id = snapshot.snapshot_id().unwrap_or_default();
        match snapshot.state() {
            Some(SnapshotState::Completed) => {}
            Some(SnapshotState::Pending) | None => {
                return outcome(
                    source_id,
                    Some(id),
                    ShareState::Pending,
                    "not completed yet",
                )
            }
            Some(other) => {
                return outcome(
                    source_id,
                    Some(id),
                    ShareState::Failed,
                    format!(
                        "snapshot {id} is {}: {}",
                        other.as_str(),
                        snapshot.state_message().unwrap_or("no message")
                    ),
                )
            }
        }
        // The OperationType/UserIds form (moto 5.2.1 ignores the CreateVolumePermission one).
        match self
            .ec2
            .modify_snapshot_attribute()
            .snapshot_id(id)
            .attribute(SnapshotAttributeName::CreateVolumePermission)
            .operation_type(OperationType::Add)
            .user_ids(&self.forensics.account)
            .send()
            .await
        {
            Ok(_) => outcome(
                source_id,
                Some(id),
                ShareState::Shared,
                format!("create-volume permission for {}", self.forensics.account),
            ),
            Err(e) => failed_or_pending(source_id, Some(id), ec2_error_code(e)),
        }
    }

    /// An encrypted snapshot: its copy under the forensics key, made once, shared when done.
    async fn share_copy(&self, source: &Snapshot) -> SnapshotShare {
        let source_id = source.snapshot_id().unwrap_or_default();
        let Some(key) = self.forensics.key_in(self.region) else {
            return outcome(
                source_id,
                None,
                ShareState::Failed,
                "encrypted, and no IR_FORENSICS_KMS_KEY to re-encrypt a copy with: not shared",
            );
        };
        match self.existing_copy(source_id).await {
            Ok(Some(copy)) => return self.share_completed(source_id, &copy).await,
            Ok(None) => {}
            Err(e) => return failed_or_pending(source_id, None, e),
        }
        if source.state() != Some(&SnapshotState::Completed) {
            return outcome(source_id, None, ShareState::Pending, "not completed yet");
        }
        let tags = TagSpecification::builder()
            .resource_type(ResourceType::Snapshot)
            .set_tags(Some(
                source
                    .tags()
                    .iter()
                    .filter(|t| t.key().is_some_and(|k| k.starts_with("ir:")))
                    .cloned()
                    .chain([Tag::builder().key("ir:copy-of").value(source_id).build()])
                    .collect(),
            ))
            .build();
        match self
            .ec2
            .copy_snapshot()
            .source_snapshot_id(source_id)
            .source_region(self.region)
            .encrypted(true)
            .kms_key_id(&key)
            .description(format!(
                "ir evidence {} copy of {source_id}",
                self.incident_id
            ))
            .tag_specifications(tags)
            .send()
            .await
        {
            // A copy of a small snapshot can be complete at once: shared in this round then.
            Ok(out) => match self.describe(out.snapshot_id().unwrap_or_default()).await {
                Ok(copy) => self.share_completed(source_id, &copy).await,
                Err(_) => outcome(
                    source_id,
                    out.snapshot_id(),
                    ShareState::Pending,
                    format!("copying under {key}"),
                ),
            },
            Err(e) => failed_or_pending(source_id, None, ec2_error_code(e)),
        }
    }

    /// The copy made for `source_id` by an earlier round: a completed or pending one first; a
    /// copy in `error` (AWS could not use the key) only when there is no other.
    async fn existing_copy(
        &self,
        source_id: &str,
    ) -> Result<Option<Snapshot>, (Option<String>, String)> {
        let out = self
            .ec2
            .describe_snapshots()
            .owner_ids("self")
            .filters(
                Filter::builder()
                    .name("tag:ir:copy-of")
                    .values(source_id)
                    .build(),
            )
            .filters(
                Filter::builder()
                    .name("tag:ir:incident-id")
                    .values(self.incident_id)
                    .build(),
            )
            .send()
            .await
            .map_err(ec2_error_code)?;
        let copies = out.snapshots();
        Ok(copies
            .iter()
            .find(|c| c.state() != Some(&SnapshotState::Error))
            .or_else(|| copies.first())
            .cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forensics_key_is_a_key_arn_of_the_forensics_account() {
        let account = "444455556666";
        assert!(is_key_arn(
            "arn:aws:kms:{region}:444455556666:key/mrk-1234abcd",
            account
        ));
        assert!(is_key_arn(
            "arn:aws-us-gov:kms:us-gov-west-1:444455556666:key/1234",
            account
        ));
        for bad in [
            "alias/forensics",
            "arn:aws:kms:us-east-1:444455556666:alias/forensics",
            "arn:aws:kms:us-east-1:111122223333:key/1234",
            "arn:aws:kms:us-east-1:444455556666:key/",
        ] {
            assert!(!is_key_arn(bad, account), "{bad}");
        }
        let f = Forensics {
            account: account.into(),
            kms_key: Some("arn:aws:kms:{region}:444455556666:key/mrk-1".into()),
        };
        assert_eq!(
            f.key_in("eu-west-1").as_deref(),
            Some("arn:aws:kms:eu-west-1:444455556666:key/mrk-1")
        );
    }
}
