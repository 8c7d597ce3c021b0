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

mod config;
mod contain;
mod observe;
mod policy;
mod release;
mod s3;

use std::collections::BTreeMap;

use ir_core::actions::{
    ContainmentError, ContainmentRecord, ContainmentRequest, Runner, Safety, StepFailed,
};
use ir_core::incident::Resource;
use ir_core::permissions::{union, Permission, KILL_SWITCH_READ};
use ir_core::playbook::{Playbook, Refusal};
use ir_core::prestate::{PreStateKey, PreStateStore};
use serde::{Deserialize, Serialize};

pub use config::LockdownConfig;
pub use policy::{deny_sid, merge_deny, offending_principal, remove_statement, DenyTarget};

pub const FUNCTION_NAME: &str = "ir-lockdown-s3";

/// Every AWS call this function makes.
pub fn permissions() -> Vec<Permission> {
    union(&[
        &[KILL_SWITCH_READ, ir_core::member::ASSUME_MEMBER_ROLE],
        ir_core::prestate::PERMISSIONS,
        observe::PERMISSIONS,
        s3::PERMISSIONS,
        contain::PERMISSIONS,
        release::PERMISSIONS,
    ])
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
        self.restore(runner, req, bucket, obs, pre).await
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
    /// The playbook in this function's own account and Region: the shared skeleton
    /// ([`ir_core::playbook::run`]).
    pub async fn handle(
        &self,
        req: ContainmentRequest,
    ) -> Result<ContainmentRecord, ContainmentError> {
        ir_core::playbook::run(self, req).await
    }

    /// The Lambda handler body: the playbook where the resource lives (its Region, and its
    /// account through the member role).
    pub async fn handle_where_it_lives(
        &self,
        reach: &ir_core::member::Reach,
        req: ContainmentRequest,
    ) -> Result<ContainmentRecord, ContainmentError> {
        ir_core::playbook::run_where_it_lives(self, reach, req).await
    }
}

impl ir_core::playbook::Relocatable for LockdownS3 {
    fn relocated(&self, sdk: &aws_config::SdkConfig) -> LockdownS3 {
        // The same client settings (path style, endpoint), in the resource's Region and account,
        // with a retry quota of its own (as every client built with `ir_core::aws_client!`).
        let mut s3 = self
            .s3
            .config()
            .to_builder()
            .region(sdk.region().cloned())
            .retry_partition(ir_core::retry_quota!(aws_sdk_s3));
        s3.set_credentials_provider(sdk.credentials_provider());
        let s3 = s3.build();
        LockdownS3 {
            s3: aws_sdk_s3::Client::from_conf(s3),
            ..self.clone()
        }
    }
}
