//! ir-preserve-evidence: preserve what an investigator needs before (or while) containment
//! changes the resource. Read-only towards the resource; writes only to the evidence bucket and
//! creates EBS snapshots.
//!
//! For each incident it collects, by resource:
//! - always `finding.json` (the normalised finding) and, where the finding names them, the
//!   CloudTrail events of the principal (`cloudtrail-principal.json`, by access key id or user
//!   name) and of the resource (`cloudtrail-resource.json`) in the incident window
//!   (`first_seen - IR_CLOUDTRAIL_LOOKBACK_HOURS` → now), via `LookupEvents`;
//! - EC2: `ec2-instance.json` (DescribeInstances), `ec2-security-groups.json`,
//!   `log-locations.json` (VPC flow logs on the VPC, subnets and ENIs) and one EBS snapshot per
//!   attached volume, tagged `ir:incident-id`, `ir:evidence=true`, `ir:source-instance`,
//!   `ir:device` (an existing snapshot for the same incident and volume is reused);
//! - IAM user / role: `iam-user.json` / `iam-role.json` (keys with last use, console access,
//!   groups, managed and inline policies, trust policy, tags);
//! - S3: `s3-bucket.json` (policy, Block Public Access, ACL, versioning, logging, encryption,
//!   tags) and `log-locations.json` (server access logging target).
//!
//! Every artifact goes to `IR_EVIDENCE_BUCKET` under
//! `incidents/<account>/<region>/<id>/artifacts/<name>/<sha256>.json`
//! with SSE-KMS (`IR_EVIDENCE_KMS_KEY_ID`), Object Lock COMPLIANCE retention
//! (`IR_EVIDENCE_RETENTION_DAYS`) and an S3-verified SHA-256 checksum. Then a manifest
//! `incidents/<account>/<region>/<id>/manifests/<sequence>.json` lists each artifact's name, key, SHA-256, size,
//! source API calls and collection time, the snapshots, what could not be collected (`gaps`),
//! and the previous manifest's key and SHA-256: a hash chain, the chain of custody.
//!
//! Idempotent: artifacts hold no collection time, so the same state gives the same hashes; when
//! nothing differs from the latest manifest no new object is written (status `unchanged`). A
//! collector that fails becomes a gap (status `partial`) and never stops the others; only a
//! failure to write to the evidence bucket fails the function (`EvidenceStoreFailed`).

mod collect;
pub mod manifest;
pub mod share;

use aws_sdk_cloudtrail::types::LookupAttributeKey;
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use chrono::{DateTime, Duration, Utc};
use ir_core::audit::{AuditTrail, Outcome};
use ir_core::config::{env_bool_strict, env_or, env_required};
use ir_core::incident::{Incident, Resource};
use ir_core::{ConfigError, TriageDecision};
use lambda_runtime::Diagnostic;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use manifest::{ArtifactEntry, Gap, Manifest, PreviousManifest, SnapshotEntry};
pub use share::{Forensics, ShareInput, ShareOutcome, ShareRequest, ShareStarter};

pub const FUNCTION_NAME: &str = "ir-preserve-evidence";

/// Snapshots of the instance's volumes, tagged at creation, and the lookup that reuses them.
const SNAPSHOTS: &[ir_core::permissions::Permission] = {
    use ir_core::permissions::{resource, Permission, ANY};
    &[
        Permission::new("ec2:DescribeSnapshots", ANY),
        Permission::new("ec2:CreateSnapshot", resource::EC2_VOLUME),
        Permission::new("ec2:CreateSnapshot", resource::EC2_SNAPSHOT),
        // Tags only as part of CreateSnapshot (TagSpecifications): no tag on anything else.
        Permission::new("ec2:CreateTags", resource::EC2_SNAPSHOT).when(
            "StringEquals",
            "ec2:CreateAction",
            "CreateSnapshot",
        ),
    ]
};

/// Every AWS call this function makes: read-only towards the resource, writes only to the
/// evidence bucket and new snapshots.
pub fn permissions() -> Vec<ir_core::permissions::Permission> {
    ir_core::permissions::union(&[
        collect::PERMISSIONS,
        SNAPSHOTS,
        manifest::PERMISSIONS,
        share::PERMISSIONS,
        &[ir_core::member::ASSUME_MEMBER_ROLE],
    ])
}

#[derive(Debug, Clone, PartialEq)]
pub struct EvidenceConfig {
    /// `IR_EVIDENCE_BUCKET` (required): versioned, Object Lock enabled.
    pub bucket: String,
    /// `IR_EVIDENCE_KMS_KEY_ID`: SSE-KMS key for every object (else the bucket default).
    pub kms_key_id: Option<String>,
    /// `IR_EVIDENCE_RETENTION_DAYS` (default 365): COMPLIANCE retention; 0 = no per-object lock.
    pub retention_days: i64,
    /// `IR_CLOUDTRAIL_LOOKBACK_HOURS` (default 24) before the finding's first sighting.
    pub lookback_hours: i64,
    /// `IR_CLOUDTRAIL_MAX_EVENTS` (default 1000) per lookup.
    pub max_trail_events: usize,
    /// `IR_EBS_SNAPSHOTS` (default true).
    pub snapshots: bool,
    /// `IR_FORENSICS_ACCOUNT_ID` / `IR_FORENSICS_KMS_KEY`: the account the snapshots are shared
    /// with ([`share`]); none by default.
    pub forensics: Option<Forensics>,
}

fn number(name: &'static str, default: &str) -> Result<i64, ConfigError> {
    let v = env_or(name, default);
    v.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or(ConfigError::Invalid {
            name,
            value: v.clone(),
            message: "expected a non-negative integer".into(),
        })
}

impl EvidenceConfig {
    pub fn from_env() -> Result<EvidenceConfig, ConfigError> {
        Ok(EvidenceConfig {
            bucket: env_required("IR_EVIDENCE_BUCKET")?,
            kms_key_id: std::env::var("IR_EVIDENCE_KMS_KEY_ID")
                .ok()
                .filter(|v| !v.trim().is_empty()),
            retention_days: number("IR_EVIDENCE_RETENTION_DAYS", "365")?,
            lookback_hours: number("IR_CLOUDTRAIL_LOOKBACK_HOURS", "24")?,
            max_trail_events: number("IR_CLOUDTRAIL_MAX_EVENTS", "1000")? as usize,
            snapshots: env_bool_strict("IR_EBS_SNAPSHOTS")?.unwrap_or(true),
            forensics: Forensics::from_env()?,
        })
    }
}

/// Input: the triage decision (the state machine passes the same object it gives containment;
/// other fields are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceRequest {
    pub decision: TriageDecision,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceStatus {
    /// Everything collected and a new manifest written.
    Preserved,
    /// Some artifacts could not be collected (see `gaps`); the rest is preserved.
    Partial,
    /// Nothing changed since the latest manifest: nothing written.
    Unchanged,
    /// Triage did not ask for a response.
    Skipped,
}

/// What the function returns (the state machine passes it to ir-notify).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceRecord {
    pub incident_id: String,
    pub function: String,
    pub status: EvidenceStatus,
    pub bucket: String,
    pub manifest_key: Option<String>,
    pub manifest_sha256: Option<String>,
    pub previous_manifest_sha256: Option<String>,
    pub sequence: u32,
    pub artifact_count: usize,
    pub snapshot_ids: Vec<String>,
    pub artifacts: Vec<ArtifactEntry>,
    pub gaps: Vec<Gap>,
    pub audit: AuditTrail,
}

/// What the function is asked: preserve (from the response) or a share round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Request {
    Share(Box<ShareInput>),
    Preserve(Box<EvidenceRequest>),
}

/// What it answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Response {
    Share(Box<ShareOutcome>),
    Preserve(Box<EvidenceRecord>),
}

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("not a preserve or share request: {0}")]
    BadRequest(String),
    #[error("could not write evidence to s3://{bucket}: {message}")]
    Store { bucket: String, message: String },
    /// The resource's account or Region cannot be reached: nothing collected there.
    #[error(transparent)]
    Unreachable(#[from] ir_core::member::ReachError),
}

impl From<EvidenceError> for Diagnostic {
    fn from(e: EvidenceError) -> Diagnostic {
        let error_type = match &e {
            EvidenceError::Store { .. } => "EvidenceStoreFailed",
            EvidenceError::BadRequest(_) => "InvalidRequest",
            EvidenceError::Unreachable(r) => r.error_type(),
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}

#[derive(Clone)]
pub struct Preserver {
    pub ec2: aws_sdk_ec2::Client,
    pub iam: aws_sdk_iam::Client,
    pub s3: aws_sdk_s3::Client,
    pub cloudtrail: aws_sdk_cloudtrail::Client,
    pub config: EvidenceConfig,
    /// Starts the share rounds when `config.forensics` is set.
    pub share_starter: Option<ShareStarter>,
}

/// One collected artifact before it is stored.
struct Collected {
    name: &'static str,
    source: Vec<String>,
    result: Result<Value, String>,
    collected_at: DateTime<Utc>,
}

fn collected(name: &'static str, source: &[&str], result: Result<Value, String>) -> Collected {
    Collected {
        name,
        source: source.iter().map(|s| s.to_string()).collect(),
        result,
        collected_at: Utc::now(),
    }
}

impl Preserver {
    /// The Lambda handler body: a share round, or a preserve run.
    pub async fn handle_request(
        &self,
        reach: &ir_core::member::Reach,
        request: Value,
    ) -> Result<Response, EvidenceError> {
        match serde_json::from_value::<Request>(request) {
            Ok(Request::Share(input)) => self
                .share_where_they_live(reach, *input)
                .await
                .map(|o| Response::Share(Box::new(o))),
            Ok(Request::Preserve(req)) => self
                .handle_where_it_lives(reach, *req)
                .await
                .map(|r| Response::Preserve(Box::new(r))),
            Err(e) => Err(EvidenceError::BadRequest(e.to_string())),
        }
    }

    /// A preserve run: collects where the resource lives (its Region, and its account
    /// through the member role: instance, snapshots, IAM and CloudTrail there) and stores in
    /// this account's evidence bucket.
    pub async fn handle_where_it_lives(
        &self,
        reach: &ir_core::member::Reach,
        req: EvidenceRequest,
    ) -> Result<EvidenceRecord, EvidenceError> {
        if req.decision.disposition != ir_core::Disposition::Respond {
            return self.handle(req).await;
        }
        let place = ir_core::member::Place::of(&req.decision.incident)?;
        let sdk = reach.sdk_for(&place, &req.decision.incident_id).await?;
        let there = Preserver {
            ec2: ir_core::aws_client!(aws_sdk_ec2, &sdk),
            iam: ir_core::aws_client!(aws_sdk_iam, &sdk),
            cloudtrail: ir_core::aws_client!(aws_sdk_cloudtrail, &sdk),
            ..self.clone()
        };
        there.handle(req).await
    }

    /// Collects with this preserver's clients.
    pub async fn handle(&self, req: EvidenceRequest) -> Result<EvidenceRecord, EvidenceError> {
        let d = &req.decision;
        let mut audit = AuditTrail::new(FUNCTION_NAME, &d.incident_id);
        let store = manifest::EvidenceStore {
            s3: &self.s3,
            config: &self.config,
        };
        if d.disposition != ir_core::Disposition::Respond {
            audit.record(
                "preserve",
                None,
                None,
                Outcome::Skipped,
                Some(format!("triage disposition is {}", d.disposition)),
            );
            return Ok(EvidenceRecord {
                incident_id: d.incident_id.clone(),
                function: FUNCTION_NAME.into(),
                status: EvidenceStatus::Skipped,
                bucket: self.config.bucket.clone(),
                manifest_key: None,
                manifest_sha256: None,
                previous_manifest_sha256: None,
                sequence: 0,
                artifact_count: 0,
                snapshot_ids: vec![],
                artifacts: vec![],
                gaps: vec![],
                audit,
            });
        }
        let inc = &d.incident;
        let (collected, snapshots) = self.collect(inc, &mut audit).await;

        // Store artifacts (content-addressed; unchanged ones are not written again).
        let previous = store.latest(inc).await?;
        let mut artifacts = Vec::new();
        let mut gaps = Vec::new();
        for c in collected {
            match c.result {
                Ok(v) => {
                    let entry = store
                        .put_artifact(
                            inc,
                            c.name,
                            &v,
                            c.source,
                            c.collected_at,
                            previous.as_ref().map(|p| &p.manifest),
                        )
                        .await?;
                    audit.record(
                        "store-artifact",
                        Some("s3:PutObject"),
                        Some(&entry.key),
                        if entry.reused {
                            Outcome::AlreadyDone
                        } else {
                            Outcome::Succeeded
                        },
                        Some(format!(
                            "sha256 {} ({} bytes)",
                            entry.entry.sha256, entry.entry.size
                        )),
                    );
                    artifacts.push(entry.entry);
                }
                Err(error) => {
                    audit.record(
                        "collect",
                        c.source.first().map(String::as_str),
                        Some(c.name),
                        Outcome::Failed,
                        Some(error.clone()),
                    );
                    gaps.push(Gap {
                        name: c.name.to_string(),
                        source: c.source,
                        error,
                    });
                }
            }
        }
        // The shares' record is the share rounds' to renew (ir_preserve_evidence::share).
        if let Some(shares) = previous.as_ref().and_then(|p| {
            p.manifest
                .artifacts
                .iter()
                .find(|a| a.name == share::SHARES_ARTIFACT)
        }) {
            artifacts.push(shares.clone());
        }
        let snapshot_ids: Vec<String> = snapshots.iter().map(|s| s.snapshot_id.clone()).collect();
        let outcome = store
            .write_manifest(inc, artifacts, snapshots, gaps, previous)
            .await?;
        audit.record(
            "write-manifest",
            Some("s3:PutObject"),
            Some(&outcome.key),
            if outcome.unchanged {
                Outcome::AlreadyDone
            } else {
                Outcome::Succeeded
            },
            Some(format!("sha256 {}", outcome.sha256)),
        );
        let m = outcome.manifest;
        if self.config.forensics.is_some() && !snapshot_ids.is_empty() {
            self.start_share(inc, &mut audit).await;
        }
        let status = if outcome.unchanged {
            EvidenceStatus::Unchanged
        } else if m.gaps.is_empty() {
            EvidenceStatus::Preserved
        } else {
            EvidenceStatus::Partial
        };
        Ok(EvidenceRecord {
            incident_id: inc.incident_id.clone(),
            function: FUNCTION_NAME.into(),
            status,
            bucket: self.config.bucket.clone(),
            manifest_key: Some(outcome.key),
            manifest_sha256: Some(outcome.sha256),
            previous_manifest_sha256: m.previous.as_ref().map(|p| p.sha256.clone()),
            sequence: m.sequence,
            artifact_count: m.artifacts.len(),
            snapshot_ids,
            gaps: m.gaps.clone(),
            artifacts: m.artifacts,
            audit,
        })
    }

    /// Starts the share rounds of the incident's snapshots (recorded; a failure leaves the
    /// snapshots where they are and the response goes on).
    async fn start_share(&self, inc: &Incident, audit: &mut AuditTrail) {
        let (outcome, detail) = match &self.share_starter {
            None => (
                Outcome::Failed,
                "no IR_STATE_MACHINE_ARN to run the share rounds".to_string(),
            ),
            Some(starter) => match starter.start(inc).await {
                Ok((arn, outcome)) => (outcome, arn),
                Err(e) => (Outcome::Failed, e),
            },
        };
        audit.record(
            "start-snapshot-share",
            Some("states:StartExecution"),
            Some(&inc.incident_id),
            outcome,
            Some(detail),
        );
    }

    /// Runs every collector for the incident's resource (concurrently) and the snapshots.
    async fn collect(
        &self,
        inc: &Incident,
        audit: &mut AuditTrail,
    ) -> (Vec<Collected>, Vec<SnapshotEntry>) {
        let mut out = vec![collected(
            "finding",
            &["finding"],
            serde_json::to_value(inc).map_err(|e| e.to_string()),
        )];
        let end = Utc::now();
        let start =
            inc.first_seen.unwrap_or(end).min(end) - Duration::hours(self.config.lookback_hours);
        let max = self.config.max_trail_events;
        let principal_lookup = inc.principal.as_ref().and_then(|p| {
            p.access_key_id
                .clone()
                .map(|k| (LookupAttributeKey::AccessKeyId, k))
                .or_else(|| p.name.clone().map(|n| (LookupAttributeKey::Username, n)))
        });
        let resource_name = inc.primary_resource().and_then(|r| match r {
            Resource::Ec2Instance { instance_id, .. } => Some(instance_id.clone()),
            Resource::S3Bucket { bucket_name, .. } => Some(bucket_name.clone()),
            Resource::IamUser { user_name, .. } => Some(user_name.clone()),
            Resource::IamRole { role_name, .. } => Some(role_name.clone()),
            _ => None,
        });
        let trail = async {
            let mut v = Vec::new();
            if let Some((key, value)) = principal_lookup {
                let r = collect::cloudtrail_events(&self.cloudtrail, key, &value, start, end, max)
                    .await;
                v.push(collected(
                    "cloudtrail-principal",
                    &["cloudtrail:LookupEvents"],
                    r,
                ));
            }
            if let Some(name) = resource_name {
                let r = collect::cloudtrail_events(
                    &self.cloudtrail,
                    LookupAttributeKey::ResourceName,
                    &name,
                    start,
                    end,
                    max,
                )
                .await;
                v.push(collected(
                    "cloudtrail-resource",
                    &["cloudtrail:LookupEvents"],
                    r,
                ));
            }
            v
        };
        let resource = async {
            let mut v = Vec::new();
            let mut snaps = Vec::new();
            let mut steps = Vec::new();
            match inc.primary_resource() {
                Some(Resource::Ec2Instance { instance_id, .. }) => {
                    match collect::ec2_instance(&self.ec2, instance_id).await {
                        Ok((json, volumes, vpc, groups)) => {
                            let subnets_enis: Vec<String> = json["network_interfaces"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .flat_map(|n| {
                                    [n["network_interface_id"].as_str(), n["subnet_id"].as_str()]
                                })
                                .flatten()
                                .map(str::to_string)
                                .collect();
                            v.push(collected(
                                "ec2-instance",
                                &["ec2:DescribeInstances"],
                                Ok(json),
                            ));
                            let sg = collect::security_groups(&self.ec2, &groups).await;
                            v.push(collected(
                                "ec2-security-groups",
                                &["ec2:DescribeSecurityGroups"],
                                sg,
                            ));
                            let mut ids: Vec<String> =
                                vpc.into_iter().chain(subnets_enis).collect();
                            ids.sort();
                            ids.dedup();
                            let logs = collect::flow_logs(&self.ec2, ids)
                                .await
                                .map(|f| serde_json::json!({"vpc_flow_logs": f}));
                            v.push(collected("log-locations", &["ec2:DescribeFlowLogs"], logs));
                            if self.config.snapshots {
                                for (volume, device) in volumes {
                                    match self
                                        .snapshot(&inc.incident_id, instance_id, &volume, &device)
                                        .await
                                    {
                                        Ok((s, reused)) => {
                                            steps.push((
                                                "snapshot-volume",
                                                volume.clone(),
                                                if reused {
                                                    Outcome::AlreadyDone
                                                } else {
                                                    Outcome::Succeeded
                                                },
                                                s.snapshot_id.clone(),
                                            ));
                                            snaps.push(s);
                                        }
                                        Err(e) => {
                                            steps.push((
                                                "snapshot-volume",
                                                volume.clone(),
                                                Outcome::Failed,
                                                e.clone(),
                                            ));
                                            v.push(collected(
                                                "ebs-snapshot",
                                                &["ec2:CreateSnapshot"],
                                                Err(format!("{volume}: {e}")),
                                            ));
                                        }
                                    }
                                }
                            }
                        }
                        Err(e) => v.push(collected(
                            "ec2-instance",
                            &["ec2:DescribeInstances"],
                            Err(e),
                        )),
                    }
                }
                Some(Resource::IamUser { user_name, .. }) => {
                    let r = collect::iam_user(&self.iam, user_name).await;
                    v.push(collected(
                        "iam-user",
                        &[
                            "iam:GetUser",
                            "iam:ListAccessKeys",
                            "iam:GetAccessKeyLastUsed",
                            "iam:GetLoginProfile",
                            "iam:ListGroupsForUser",
                            "iam:ListAttachedUserPolicies",
                            "iam:GetUserPolicy",
                        ],
                        r,
                    ));
                }
                Some(Resource::IamRole { role_name, .. }) => {
                    let r = collect::iam_role(&self.iam, role_name).await;
                    v.push(collected(
                        "iam-role",
                        &[
                            "iam:GetRole",
                            "iam:ListAttachedRolePolicies",
                            "iam:GetRolePolicy",
                        ],
                        r,
                    ));
                }
                Some(Resource::S3Bucket { bucket_name, .. }) => {
                    match collect::s3_bucket(&self.s3, bucket_name).await {
                        Ok((config, logging)) => {
                            v.push(collected(
                                "s3-bucket",
                                &[
                                    "s3:GetBucketPolicy",
                                    "s3:GetPublicAccessBlock",
                                    "s3:GetBucketAcl",
                                    "s3:GetBucketVersioning",
                                    "s3:GetBucketLogging",
                                    "s3:GetBucketEncryption",
                                    "s3:GetBucketTagging",
                                ],
                                Ok(config),
                            ));
                            v.push(collected(
                                "log-locations",
                                &["s3:GetBucketLogging"],
                                Ok(serde_json::json!({"s3_access_logs": logging})),
                            ));
                        }
                        Err(e) => v.push(collected("s3-bucket", &["s3:GetBucketPolicy"], Err(e))),
                    }
                }
                _ => {}
            }
            (v, snaps, steps)
        };
        let (trail, (res, snaps, steps)) = futures::join!(trail, resource);
        for (step, target, outcome, detail) in steps {
            audit.record(
                step,
                Some("ec2:CreateSnapshot"),
                Some(&target),
                outcome,
                Some(detail),
            );
        }
        out.extend(res);
        out.extend(trail);
        (out, snaps)
    }

    /// Snapshots one volume, or returns the snapshot an earlier run made for this incident.
    async fn snapshot(
        &self,
        incident_id: &str,
        instance_id: &str,
        volume_id: &str,
        device: &str,
    ) -> Result<(SnapshotEntry, bool), String> {
        let err = |e: String| e;
        let existing = self
            .ec2
            .describe_snapshots()
            .owner_ids("self")
            .filters(
                Filter::builder()
                    .name("volume-id")
                    .values(volume_id)
                    .build(),
            )
            .filters(
                Filter::builder()
                    .name("tag:ir:incident-id")
                    .values(incident_id)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| err(aws_sdk_ec2::error::DisplayErrorContext(e).to_string()))?;
        if let Some(s) = existing.snapshots().first() {
            return Ok((
                SnapshotEntry {
                    volume_id: volume_id.into(),
                    device: device.into(),
                    snapshot_id: s.snapshot_id().unwrap_or_default().into(),
                },
                true,
            ));
        }
        let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
        let out = self
            .ec2
            .create_snapshot()
            .volume_id(volume_id)
            .description(format!("ir evidence {incident_id} {instance_id} {device}"))
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Snapshot)
                    .tags(tag("ir:incident-id", incident_id))
                    .tags(tag("ir:evidence", "true"))
                    .tags(tag("ir:source-instance", instance_id))
                    .tags(tag("ir:device", device))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| aws_sdk_ec2::error::DisplayErrorContext(e).to_string())?;
        Ok((
            SnapshotEntry {
                volume_id: volume_id.into(),
                device: device.into(),
                snapshot_id: out.snapshot_id().unwrap_or_default().into(),
            },
            false,
        ))
    }
}
