//! ir-lockdown-s3: lock down an exposed or abused bucket without deleting anything, and undo it.
//!
//! Contain, in order (each step recorded; dry-run records the plan):
//! 1. `record-pre-state`: Block Public Access flags, versioning status and access-logging target
//!    into the pre-state table ([`ir_core::prestate`]), unless an earlier response recorded them;
//! 2. `deny-principal`: a Deny statement (Sid `IRDeny<incident>`) for the offending principal,
//!    **merged** into the existing bucket policy — every existing statement is kept. It comes
//!    before Block Public Access: with `BlockPublicPolicy` on, S3 refuses any policy that still
//!    holds a public statement, which is the case for the buckets this playbook exists for;
//! 3. `block-public-access`: all four bucket-level Block Public Access settings on;
//! 4. `enable-versioning`: so overwrites and deletes keep the prior versions;
//! 5. `enable-access-logging`: server access logs to `IR_EVIDENCE_BUCKET` under
//!    `access-logs/<bucket>/` (skipped, with the reason, when no evidence bucket is configured or
//!    the bucket already logs somewhere);
//! 6. `object-lock`: only with `IR_S3_OBJECT_LOCK=true` and tier `auto`, because it can never be
//!    turned off; otherwise recorded as skipped;
//! 7. `tag-locked-down`: `ir:status=locked-down`, `ir:incident-id` (merged into the tag set).
//!
//! Release restores the Block Public Access flags (or removes the configuration), removes only
//! its own Deny statement (deleting the policy only if nothing else is left), suspends versioning
//! if it was never enabled (S3 cannot return a bucket to "never versioned"), restores logging,
//! tags `ir:status=released` and marks the stored pre-state released.
//!
//! Every AWS call is declared as a [`Permission`] beside the code that makes it; [`permissions`]
//! is the function's whole IAM policy.

use std::collections::BTreeMap;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{
    BucketLoggingStatus, BucketVersioningStatus, LoggingEnabled, ObjectLockConfiguration,
    ObjectLockEnabled, PublicAccessBlockConfiguration, Tag, Tagging, VersioningConfiguration,
};
use ir_core::actions::{
    ContainmentError, ContainmentRecord, ContainmentRequest, Runner, Safety, StepFailed,
    StepResult, TAG_INCIDENT, TAG_STATUS,
};
use ir_core::config::env_bool_strict;
use ir_core::incident::{Incident, PrincipalKind, Resource};
use ir_core::permissions::{resource::S3_BUCKET, union, Permission, KILL_SWITCH_READ};
use ir_core::playbook::{Playbook, Refusal};
use ir_core::prestate::{PreStateKey, PreStateStore};
use ir_core::{ConfigError, Tier};
use serde::{Deserialize, Serialize};

pub const FUNCTION_NAME: &str = "ir-lockdown-s3";

// observe (HeadBucket is authorised by s3:ListBucket)
const HEAD_BUCKET: Permission = Permission::new("s3:ListBucket", S3_BUCKET);
const GET_TAGGING: Permission = Permission::new("s3:GetBucketTagging", S3_BUCKET);
const GET_PUBLIC_ACCESS_BLOCK: Permission =
    Permission::new("s3:GetBucketPublicAccessBlock", S3_BUCKET);
const GET_POLICY: Permission = Permission::new("s3:GetBucketPolicy", S3_BUCKET);
const GET_VERSIONING: Permission = Permission::new("s3:GetBucketVersioning", S3_BUCKET);
const GET_LOGGING: Permission = Permission::new("s3:GetBucketLogging", S3_BUCKET);
const GET_OBJECT_LOCK: Permission =
    Permission::new("s3:GetBucketObjectLockConfiguration", S3_BUCKET);
const OBSERVE: &[Permission] = &[
    HEAD_BUCKET,
    GET_TAGGING,
    GET_PUBLIC_ACCESS_BLOCK,
    GET_POLICY,
    GET_VERSIONING,
    GET_LOGGING,
    GET_OBJECT_LOCK,
];
// contain and release (DeletePublicAccessBlock is authorised by s3:PutBucketPublicAccessBlock)
const PUT_PUBLIC_ACCESS_BLOCK: Permission =
    Permission::new("s3:PutBucketPublicAccessBlock", S3_BUCKET);
const PUT_POLICY: Permission = Permission::new("s3:PutBucketPolicy", S3_BUCKET);
const DELETE_POLICY: Permission = Permission::new("s3:DeleteBucketPolicy", S3_BUCKET);
const PUT_VERSIONING: Permission = Permission::new("s3:PutBucketVersioning", S3_BUCKET);
const PUT_LOGGING: Permission = Permission::new("s3:PutBucketLogging", S3_BUCKET);
const PUT_OBJECT_LOCK: Permission =
    Permission::new("s3:PutBucketObjectLockConfiguration", S3_BUCKET);
const PUT_TAGGING: Permission = Permission::new("s3:PutBucketTagging", S3_BUCKET);
const CHANGE: &[Permission] = &[
    PUT_PUBLIC_ACCESS_BLOCK,
    PUT_POLICY,
    DELETE_POLICY,
    PUT_VERSIONING,
    PUT_LOGGING,
    PUT_OBJECT_LOCK,
    PUT_TAGGING,
];

/// Every AWS call this function makes.
pub fn permissions() -> Vec<Permission> {
    union(&[
        &[KILL_SWITCH_READ],
        ir_core::prestate::PERMISSIONS,
        OBSERVE,
        CHANGE,
    ])
}

/// The error code S3 answered with (S3 sends some, e.g. HeadBucket's 404, without a body: the
/// SDK then names the status, `NotFound`).
fn code<E: ProvideErrorMetadata>(e: &E) -> &str {
    e.code().unwrap_or("")
}

#[derive(Debug, Clone, PartialEq)]
pub struct LockdownConfig {
    /// `IR_EVIDENCE_BUCKET`: where server access logs go.
    pub evidence_bucket: Option<String>,
    /// `IR_S3_OBJECT_LOCK` (default false): allow the irreversible Object Lock step at tier auto.
    pub object_lock: bool,
}

impl LockdownConfig {
    pub fn from_env() -> Result<LockdownConfig, ConfigError> {
        Ok(LockdownConfig {
            evidence_bucket: std::env::var("IR_EVIDENCE_BUCKET")
                .ok()
                .filter(|v| !v.trim().is_empty()),
            object_lock: env_bool_strict("IR_S3_OBJECT_LOCK")?.unwrap_or(false),
        })
    }
}

/// State before lockdown (kept in the pre-state table; the original policy is the current one
/// minus this playbook's own statement, so it needs no copy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3PreState {
    /// Block Public Access: BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy,
    /// RestrictPublicBuckets; `None` when the bucket had no configuration.
    #[serde(rename = "b", default)]
    pub public_access_block: Option<[bool; 4]>,
    /// `Enabled`, `Suspended`, or `None` (never versioned).
    #[serde(rename = "v", default)]
    pub versioning: Option<String>,
    /// `target-bucket/prefix` of existing access logging.
    #[serde(rename = "l", default)]
    pub logging: Option<String>,
}

/// The live view of the bucket.
#[derive(Debug, Clone)]
pub struct Observed {
    tags: BTreeMap<String, String>,
    pre: S3PreState,
    policy: Option<serde_json::Value>,
    object_lock: bool,
}

fn err_text<E: std::error::Error>(e: E) -> String {
    aws_sdk_s3::error::DisplayErrorContext(e).to_string()
}

/// The statement id this playbook owns in a bucket policy.
pub fn deny_sid(incident_id: &str) -> String {
    // Sids are alphanumeric.
    format!("IRDeny{}", incident_id.replace('-', ""))
}

/// The ARN of the principal that acted, where the finding names one S3 can deny.
pub fn offending_principal_arn(incident: &Incident) -> Option<String> {
    let p = incident.principal.as_ref()?;
    let name = p.name.as_ref()?;
    let kind = match p.kind {
        PrincipalKind::IamUser => "user",
        PrincipalKind::AssumedRole | PrincipalKind::Role => "role",
        _ => return None,
    };
    Some(format!(
        "arn:{}:iam::{}:{kind}/{name}",
        incident.partition, incident.account_id
    ))
}

/// `policy` with a Deny for `principal` added under `sid` (unless a statement with that Sid is
/// already there). Every existing statement is kept as it is.
pub fn merge_deny(
    policy: Option<&serde_json::Value>,
    sid: &str,
    principal: &str,
    bucket: &str,
) -> serde_json::Value {
    let mut doc = policy
        .cloned()
        .unwrap_or_else(|| serde_json::json!({"Version": "2012-10-17", "Statement": []}));
    let statement = serde_json::json!({
        "Sid": sid,
        "Effect": "Deny",
        "Principal": {"AWS": principal},
        "Action": "s3:*",
        "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")]
    });
    match doc.get_mut("Statement") {
        Some(serde_json::Value::Array(stmts)) => {
            if !stmts.iter().any(|s| s["Sid"] == sid) {
                stmts.push(statement);
            }
        }
        // A single statement object is legal policy grammar: keep it, add ours beside it.
        Some(single @ serde_json::Value::Object(_)) => {
            let existing = single.take();
            *single = serde_json::Value::Array(vec![existing, statement]);
        }
        _ => doc["Statement"] = serde_json::Value::Array(vec![statement]),
    }
    doc
}

/// `policy` without the statement `sid`; `None` when nothing else is left.
pub fn remove_statement(policy: &serde_json::Value, sid: &str) -> Option<serde_json::Value> {
    let mut doc = policy.clone();
    let stmts: Vec<serde_json::Value> = match doc.get("Statement") {
        Some(serde_json::Value::Array(s)) => {
            s.iter().filter(|s| s["Sid"] != sid).cloned().collect()
        }
        Some(s @ serde_json::Value::Object(_)) if s["Sid"] != sid => vec![s.clone()],
        _ => vec![],
    };
    if stmts.is_empty() {
        return None;
    }
    doc["Statement"] = serde_json::Value::Array(stmts);
    Some(doc)
}

fn has_statement(policy: Option<&serde_json::Value>, sid: &str) -> bool {
    match policy.and_then(|p| p.get("Statement")) {
        Some(serde_json::Value::Array(s)) => s.iter().any(|s| s["Sid"] == sid),
        Some(s @ serde_json::Value::Object(_)) => s["Sid"] == sid,
        _ => false,
    }
}

impl Playbook for LockdownS3 {
    type Target = String;
    type Observed = Observed;
    type PreState = S3PreState;
    const FUNCTION: &'static str = FUNCTION_NAME;

    fn safety(&self) -> &Safety {
        &self.safety
    }

    fn pre_state_store(&self) -> &PreStateStore {
        &self.pre_state
    }

    fn target(&self, req: &ContainmentRequest) -> Result<String, Refusal> {
        match req.decision.incident.primary_resource() {
            Some(Resource::S3Bucket { bucket_name, .. }) => Ok(bucket_name.clone()),
            other => Err(Refusal::Error(ContainmentError::WrongResource(
                other
                    .map(|r| r.display_id())
                    .unwrap_or_else(|| "none".into()),
            ))),
        }
    }

    async fn observe(&self, bucket: &String) -> Result<Observed, ContainmentError> {
        self.read_live(bucket).await
    }

    fn live_tags<'a>(&self, obs: &'a Observed) -> &'a BTreeMap<String, String> {
        &obs.tags
    }

    fn pre_state_key(&self, req: &ContainmentRequest, bucket: &String) -> PreStateKey {
        // Bucket names are global (per partition).
        PreStateKey::new(
            &req.decision.incident.account_id,
            "global",
            &format!("s3/{bucket}"),
        )
    }

    fn observed_pre_state(&self, _bucket: &String, obs: &Observed) -> S3PreState {
        obs.pre.clone()
    }

    async fn contain(
        &self,
        runner: &mut Runner,
        req: &ContainmentRequest,
        bucket: &String,
        obs: &Observed,
        _pre: &S3PreState,
    ) -> Result<(), StepFailed> {
        self.lock_down(runner, req, bucket, obs).await
    }

    async fn release(
        &self,
        runner: &mut Runner,
        req: &ContainmentRequest,
        bucket: &String,
        obs: &Observed,
        pre: &S3PreState,
    ) -> Result<(), StepFailed> {
        self.restore(runner, &req.decision.incident_id, bucket, obs, pre)
            .await
    }
}

#[derive(Debug, Clone)]
pub struct LockdownS3 {
    pub s3: aws_sdk_s3::Client,
    pub safety: Safety,
    pub pre_state: PreStateStore,
    pub config: LockdownConfig,
}

impl LockdownS3 {
    /// The Lambda handler body: the shared playbook skeleton ([`ir_core::playbook::run`]).
    pub async fn handle(
        &self,
        req: ContainmentRequest,
    ) -> Result<ContainmentRecord, ContainmentError> {
        ir_core::playbook::run(self, req).await
    }

    /// Reads the bucket's tags, Block Public Access, policy, versioning, logging, Object Lock.
    async fn read_live(&self, bucket: &str) -> Result<Observed, ContainmentError> {
        let read = |what: &str, e: String| ContainmentError::Read {
            what: what.to_string(),
            message: e,
        };
        if let Err(e) = self.s3.head_bucket().bucket(bucket).send().await {
            let not_found = matches!(code(&e), "NotFound" | "NoSuchBucket")
                || e.raw_response().map(|r| r.status().as_u16()) == Some(404);
            return Err(if not_found {
                ContainmentError::NotFound(format!("s3://{bucket}"))
            } else {
                read(HEAD_BUCKET.action, err_text(e))
            });
        }
        let tags = match self.s3.get_bucket_tagging().bucket(bucket).send().await {
            Ok(o) => o
                .tag_set()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect(),
            Err(e) if code(&e) == "NoSuchTagSet" => BTreeMap::new(),
            Err(e) => return Err(read(GET_TAGGING.action, err_text(e))),
        };
        let public_access_block = match self
            .s3
            .get_public_access_block()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(o) => o.public_access_block_configuration().map(|c| {
                [
                    c.block_public_acls().unwrap_or(false),
                    c.ignore_public_acls().unwrap_or(false),
                    c.block_public_policy().unwrap_or(false),
                    c.restrict_public_buckets().unwrap_or(false),
                ]
            }),
            Err(e) if code(&e) == "NoSuchPublicAccessBlockConfiguration" => None,
            Err(e) => return Err(read(GET_PUBLIC_ACCESS_BLOCK.action, err_text(e))),
        };
        let policy = match self.s3.get_bucket_policy().bucket(bucket).send().await {
            Ok(o) => match o.policy() {
                Some(p) => Some(
                    serde_json::from_str(p)
                        .map_err(|e| read("bucket policy JSON", e.to_string()))?,
                ),
                None => None,
            },
            Err(e) if code(&e) == "NoSuchBucketPolicy" => None,
            Err(e) => return Err(read(GET_POLICY.action, err_text(e))),
        };
        let versioning = self
            .s3
            .get_bucket_versioning()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| read(GET_VERSIONING.action, err_text(e)))?
            .status()
            .map(|s| s.as_str().to_string());
        let logging = self
            .s3
            .get_bucket_logging()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| read(GET_LOGGING.action, err_text(e)))?
            .logging_enabled()
            .map(|l| format!("{}/{}", l.target_bucket(), l.target_prefix()));
        let object_lock = match self
            .s3
            .get_object_lock_configuration()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(o) => o
                .object_lock_configuration()
                .and_then(|c| c.object_lock_enabled())
                .is_some_and(|e| *e == ObjectLockEnabled::Enabled),
            Err(_) => false,
        };
        Ok(Observed {
            tags,
            pre: S3PreState {
                public_access_block,
                versioning,
                logging,
            },
            policy,
            object_lock,
        })
    }

    /// Merges `add` into the bucket's tag set (PutBucketTagging replaces the whole set).
    async fn merge_tags(
        &self,
        bucket: &str,
        current: &BTreeMap<String, String>,
        add: &[(&str, &str)],
    ) -> Result<(), String> {
        let mut tags = current.clone();
        for (k, v) in add {
            tags.insert(k.to_string(), v.to_string());
        }
        let set: Vec<Tag> = tags
            .iter()
            .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
            .collect();
        let tagging = Tagging::builder()
            .set_tag_set(Some(set))
            .build()
            .map_err(|e| e.to_string())?;
        self.s3
            .put_bucket_tagging()
            .bucket(bucket)
            .tagging(tagging)
            .send()
            .await
            .map_err(err_text)?;
        Ok(())
    }

    async fn put_policy(&self, bucket: &str, doc: &serde_json::Value) -> Result<(), String> {
        self.s3
            .put_bucket_policy()
            .bucket(bucket)
            .policy(doc.to_string())
            .send()
            .await
            .map_err(err_text)?;
        Ok(())
    }

    /// The lockdown steps.
    async fn lock_down(
        &self,
        runner: &mut Runner,
        req: &ContainmentRequest,
        bucket: &str,
        obs: &Observed,
    ) -> Result<(), StepFailed> {
        let incident_id = &req.decision.incident_id;
        let target = format!("s3://{bucket}");
        self.deny_principal(runner, req, bucket, obs).await?;
        let bpa_on = obs.pre.public_access_block == Some([true; 4]);
        runner
            .step(
                "block-public-access",
                &PUT_PUBLIC_ACCESS_BLOCK,
                &target,
                "all four Block Public Access settings on".into(),
                || async {
                    if bpa_on {
                        return Ok(StepResult::AlreadyDone("already fully blocked".into()));
                    }
                    let cfg = PublicAccessBlockConfiguration::builder()
                        .block_public_acls(true)
                        .ignore_public_acls(true)
                        .block_public_policy(true)
                        .restrict_public_buckets(true)
                        .build();
                    self.s3
                        .put_public_access_block()
                        .bucket(bucket)
                        .public_access_block_configuration(cfg)
                        .send()
                        .await
                        .map_err(err_text)?;
                    Ok(StepResult::Changed(format!(
                        "{:?} → all on",
                        obs.pre.public_access_block
                    )))
                },
            )
            .await?;
        self.enable_versioning(runner, bucket, obs).await?;
        self.enable_logging(runner, bucket, obs).await?;
        self.object_lock(runner, req, bucket, obs).await?;
        self.tag_locked_down(runner, incident_id, bucket, obs).await
    }

    /// Step `deny-principal`: this incident's Deny merged into the bucket policy.
    async fn deny_principal(
        &self,
        runner: &mut Runner,
        req: &ContainmentRequest,
        bucket: &str,
        obs: &Observed,
    ) -> Result<(), StepFailed> {
        let target = format!("s3://{bucket}");
        let sid = deny_sid(&req.decision.incident_id);
        match offending_principal_arn(&req.decision.incident) {
            Some(principal) => {
                let present = has_statement(obs.policy.as_ref(), &sid);
                let merged = merge_deny(obs.policy.as_ref(), &sid, &principal, bucket);
                let kept = obs
                    .policy
                    .as_ref()
                    .and_then(|p| p["Statement"].as_array().map(Vec::len))
                    .unwrap_or(0);
                runner
                    .step("deny-principal", &PUT_POLICY, &target, format!("add Deny s3:* for {principal} as {sid}, keeping {kept} existing statement(s)"), || async {
                        if present {
                            return Ok(StepResult::AlreadyDone(format!("{sid} already in the policy")));
                        }
                        self.put_policy(bucket, &merged).await?;
                        Ok(StepResult::Changed(format!("{sid} denies {principal}; {kept} existing statement(s) kept")))
                    })
                    .await?;
            }
            None => runner.skip(
                "deny-principal",
                &target,
                "the finding names no IAM principal to deny".into(),
            ),
        }
        Ok(())
    }

    /// Step `enable-versioning`.
    async fn enable_versioning(
        &self,
        runner: &mut Runner,
        bucket: &str,
        obs: &Observed,
    ) -> Result<(), StepFailed> {
        let target = format!("s3://{bucket}");
        let versioned = obs.pre.versioning.as_deref() == Some("Enabled");
        runner
            .step(
                "enable-versioning",
                &PUT_VERSIONING,
                &target,
                "versioning → Enabled".into(),
                || async {
                    if versioned {
                        return Ok(StepResult::AlreadyDone("already Enabled".into()));
                    }
                    self.s3
                        .put_bucket_versioning()
                        .bucket(bucket)
                        .versioning_configuration(
                            VersioningConfiguration::builder()
                                .status(BucketVersioningStatus::Enabled)
                                .build(),
                        )
                        .send()
                        .await
                        .map_err(err_text)?;
                    Ok(StepResult::Changed(format!(
                        "{} → Enabled",
                        obs.pre.versioning.as_deref().unwrap_or("never versioned")
                    )))
                },
            )
            .await
    }

    /// Step `enable-access-logging` (into the evidence bucket).
    async fn enable_logging(
        &self,
        runner: &mut Runner,
        bucket: &str,
        obs: &Observed,
    ) -> Result<(), StepFailed> {
        let target = format!("s3://{bucket}");
        match (&self.config.evidence_bucket, &obs.pre.logging) {
            (Some(evidence), None) => {
                let prefix = format!("access-logs/{bucket}/");
                runner
                    .step(
                        "enable-access-logging",
                        &PUT_LOGGING,
                        &target,
                        format!("server access logs → s3://{evidence}/{prefix}"),
                        || async {
                            let logging = LoggingEnabled::builder()
                                .target_bucket(evidence)
                                .target_prefix(&prefix)
                                .build()
                                .map_err(|e| e.to_string())?;
                            self.s3
                                .put_bucket_logging()
                                .bucket(bucket)
                                .bucket_logging_status(
                                    BucketLoggingStatus::builder()
                                        .logging_enabled(logging)
                                        .build(),
                                )
                                .send()
                                .await
                                .map_err(err_text)?;
                            Ok(StepResult::Changed(format!(
                                "logging to s3://{evidence}/{prefix}"
                            )))
                        },
                    )
                    .await?;
            }
            (_, Some(existing)) => runner.skip(
                "enable-access-logging",
                &target,
                format!("already logging to s3://{existing}"),
            ),
            (None, None) => runner.skip(
                "enable-access-logging",
                &target,
                "no evidence bucket configured (IR_EVIDENCE_BUCKET)".into(),
            ),
        }
        Ok(())
    }

    /// Step `object-lock`: only when configured and at tier auto (it is irreversible).
    async fn object_lock(
        &self,
        runner: &mut Runner,
        req: &ContainmentRequest,
        bucket: &str,
        obs: &Observed,
    ) -> Result<(), StepFailed> {
        let target = format!("s3://{bucket}");
        if obs.object_lock {
            runner.skip("object-lock", &target, "Object Lock already enabled".into());
        } else if !self.config.object_lock {
            runner.skip(
                "object-lock",
                &target,
                "Object Lock is irreversible: not enabled (IR_S3_OBJECT_LOCK is off)".into(),
            );
        } else if req.decision.tier != Tier::Auto {
            runner.skip(
                "object-lock",
                &target,
                format!(
                    "Object Lock is irreversible: tier {} does not allow it",
                    req.decision.tier
                ),
            );
        } else {
            runner
                .step(
                    "object-lock",
                    &PUT_OBJECT_LOCK,
                    &target,
                    "enable Object Lock (irreversible)".into(),
                    || async {
                        self.s3
                            .put_object_lock_configuration()
                            .bucket(bucket)
                            .object_lock_configuration(
                                ObjectLockConfiguration::builder()
                                    .object_lock_enabled(ObjectLockEnabled::Enabled)
                                    .build(),
                            )
                            .send()
                            .await
                            .map_err(err_text)?;
                        Ok(StepResult::Changed("Object Lock enabled".into()))
                    },
                )
                .await?;
        }
        Ok(())
    }

    /// Step `tag-locked-down` (merged into the tag set).
    async fn tag_locked_down(
        &self,
        runner: &mut Runner,
        incident_id: &str,
        bucket: &str,
        obs: &Observed,
    ) -> Result<(), StepFailed> {
        let target = format!("s3://{bucket}");
        let tagged = obs.tags.get(TAG_STATUS).map(String::as_str) == Some("locked-down")
            && obs.tags.get(TAG_INCIDENT).map(String::as_str) == Some(incident_id);
        runner
            .step(
                "tag-locked-down",
                &PUT_TAGGING,
                &target,
                format!("{TAG_STATUS}=locked-down, {TAG_INCIDENT}={incident_id} (merged)"),
                || async {
                    if tagged {
                        return Ok(StepResult::AlreadyDone("already tagged".into()));
                    }
                    self.merge_tags(
                        bucket,
                        &obs.tags,
                        &[(TAG_STATUS, "locked-down"), (TAG_INCIDENT, incident_id)],
                    )
                    .await?;
                    Ok(StepResult::Changed("tagged".into()))
                },
            )
            .await
    }

    /// The release steps.
    async fn restore(
        &self,
        runner: &mut Runner,
        incident_id: &str,
        bucket: &str,
        obs: &Observed,
        pre: &S3PreState,
    ) -> Result<(), StepFailed> {
        let target = format!("s3://{bucket}");
        runner
            .step(
                "restore-public-access-block",
                &PUT_PUBLIC_ACCESS_BLOCK,
                &target,
                format!("→ {:?}", pre.public_access_block),
                || async {
                    if obs.pre.public_access_block == pre.public_access_block {
                        return Ok(StepResult::AlreadyDone("unchanged".into()));
                    }
                    match pre.public_access_block {
                        Some([a, b, c, d]) => {
                            let cfg = PublicAccessBlockConfiguration::builder()
                                .block_public_acls(a)
                                .ignore_public_acls(b)
                                .block_public_policy(c)
                                .restrict_public_buckets(d)
                                .build();
                            self.s3
                                .put_public_access_block()
                                .bucket(bucket)
                                .public_access_block_configuration(cfg)
                                .send()
                                .await
                                .map_err(err_text)?;
                        }
                        None => {
                            self.s3
                                .delete_public_access_block()
                                .bucket(bucket)
                                .send()
                                .await
                                .map_err(err_text)?;
                        }
                    }
                    Ok(StepResult::Changed(format!(
                        "→ {:?}",
                        pre.public_access_block
                    )))
                },
            )
            .await?;
        let sid = deny_sid(incident_id);
        let present = has_statement(obs.policy.as_ref(), &sid);
        let remaining = obs.policy.as_ref().and_then(|p| remove_statement(p, &sid));
        runner
            .step(
                "remove-deny-statement",
                if remaining.is_some() {
                    &PUT_POLICY
                } else {
                    &DELETE_POLICY
                },
                &target,
                format!("remove {sid}, keep the rest"),
                || async {
                    if !present {
                        return Ok(StepResult::AlreadyDone(format!("{sid} not in the policy")));
                    }
                    match &remaining {
                        Some(doc) => self.put_policy(bucket, doc).await?,
                        None => {
                            self.s3
                                .delete_bucket_policy()
                                .bucket(bucket)
                                .send()
                                .await
                                .map_err(err_text)?;
                        }
                    }
                    Ok(StepResult::Changed(format!("{sid} removed")))
                },
            )
            .await?;
        if pre.versioning.as_deref() != Some("Enabled")
            && obs.pre.versioning.as_deref() == Some("Enabled")
        {
            runner
                .step("suspend-versioning", &PUT_VERSIONING, &target, "versioning → Suspended (a bucket cannot return to never-versioned; existing versions stay)".into(), || async {
                    self.s3
                        .put_bucket_versioning()
                        .bucket(bucket)
                        .versioning_configuration(VersioningConfiguration::builder().status(BucketVersioningStatus::Suspended).build())
                        .send()
                        .await
                        .map_err(err_text)?;
                    Ok(StepResult::Changed("Enabled → Suspended".into()))
                })
                .await?;
        }
        if pre.logging.is_none() && obs.pre.logging.is_some() {
            runner
                .step(
                    "disable-access-logging",
                    &PUT_LOGGING,
                    &target,
                    "logging → off (as before)".into(),
                    || async {
                        self.s3
                            .put_bucket_logging()
                            .bucket(bucket)
                            .bucket_logging_status(BucketLoggingStatus::builder().build())
                            .send()
                            .await
                            .map_err(err_text)?;
                        Ok(StepResult::Changed("logging off".into()))
                    },
                )
                .await?;
        }
        runner
            .step(
                "tag-released",
                &PUT_TAGGING,
                &target,
                format!("{TAG_STATUS}=released"),
                || async {
                    self.merge_tags(
                        bucket,
                        &obs.tags,
                        &[(TAG_STATUS, "released"), (TAG_INCIDENT, incident_id)],
                    )
                    .await?;
                    Ok(StepResult::Changed("released".into()))
                },
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_every_statement_and_is_idempotent() {
        let existing = serde_json::json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "AllowCdn", "Effect": "Allow", "Principal": {"Service": "cloudfront.amazonaws.com"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}
        ]});
        let merged = merge_deny(Some(&existing), "IRDenyX", "arn:aws:iam::1:user/u", "b");
        let stmts = merged["Statement"].as_array().unwrap();
        assert_eq!(stmts.len(), 2);
        assert_eq!(stmts[0], existing["Statement"][0]);
        assert_eq!(
            merge_deny(Some(&merged), "IRDenyX", "arn:aws:iam::1:user/u", "b"),
            merged
        );
        assert_eq!(remove_statement(&merged, "IRDenyX"), Some(existing.clone()));
        assert_eq!(
            remove_statement(&merge_deny(None, "IRDenyX", "p", "b"), "IRDenyX"),
            None
        );
        // A single-object Statement is kept too.
        let single = serde_json::json!({"Version": "2012-10-17", "Statement": existing["Statement"][0].clone()});
        assert_eq!(
            merge_deny(Some(&single), "IRDenyX", "p", "b")["Statement"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }
}
