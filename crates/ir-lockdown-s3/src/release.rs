//! Release (a false positive): Block Public Access, the policy (less this incident's Deny),
//! versioning and logging as recorded before the lockdown.

use aws_sdk_s3::types::{BucketLoggingStatus, BucketVersioningStatus};
use ir_core::actions::{
    ContainmentRecord, ContainmentRequest, Runner, StepFailed, StepResult, TAG_INCIDENT, TAG_STATUS,
};
use ir_core::audit::Outcome;
use ir_core::permissions::{resource::S3_BUCKET, Permission};

use crate::policy::{deny_sid, has_statement, remove_statement};
use crate::s3::{
    err_text, PUT_LOGGING, PUT_POLICY, PUT_PUBLIC_ACCESS_BLOCK, PUT_TAGGING, PUT_VERSIONING,
};
use crate::{LockdownS3, Observed, S3PreState};

pub(crate) const DELETE_POLICY: Permission = Permission::new("s3:DeleteBucketPolicy", S3_BUCKET);

pub(crate) const PERMISSIONS: &[Permission] = &[DELETE_POLICY];

impl LockdownS3 {
    /// The release steps, in order.
    pub(crate) async fn restore(
        &self,
        runner: &mut Runner,
        req: &ContainmentRequest,
        bucket: &str,
        obs: &Observed,
        pre: &S3PreState,
    ) -> Result<(), StepFailed> {
        let incident_id = req.decision.incident_id.as_str();
        let previous = req.previous.as_ref();
        self.restore_public_access_block(runner, bucket, obs, pre)
            .await?;
        self.remove_deny(runner, incident_id, bucket, obs).await?;
        let turned_on = contain_turned_on(previous, "enable-versioning");
        self.restore_versioning(runner, bucket, obs, pre, turned_on)
            .await?;
        let turned_on = contain_turned_on(previous, "enable-access-logging");
        self.restore_logging(runner, bucket, obs, pre, turned_on)
            .await?;
        self.tag_released(runner, incident_id, bucket, obs).await
    }

    /// Step `restore-public-access-block`: the recorded flags, or no configuration.
    async fn restore_public_access_block(
        &self,
        runner: &mut Runner,
        bucket: &str,
        obs: &Observed,
        pre: &S3PreState,
    ) -> Result<(), StepFailed> {
        runner
            .step(
                "restore-public-access-block",
                &PUT_PUBLIC_ACCESS_BLOCK,
                &format!("s3://{bucket}"),
                format!("→ {:?}", pre.public_access_block),
                || async {
                    if obs.pre.public_access_block == pre.public_access_block {
                        return Ok(StepResult::AlreadyDone("unchanged".into()));
                    }
                    match pre.public_access_block {
                        Some(flags) => self.set_public_access_block(bucket, flags).await?,
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
            .await
    }

    /// Step `remove-deny-statement`: only this incident's statement goes; the policy is deleted
    /// only when nothing else is left.
    async fn remove_deny(
        &self,
        runner: &mut Runner,
        incident_id: &str,
        bucket: &str,
        obs: &Observed,
    ) -> Result<(), StepFailed> {
        let sid = deny_sid(incident_id);
        let present = has_statement(obs.policy.as_ref(), &sid);
        let remaining = obs.policy.as_ref().and_then(|p| remove_statement(p, &sid));
        let call = if remaining.is_some() {
            &PUT_POLICY
        } else {
            &DELETE_POLICY
        };
        runner
            .step(
                "remove-deny-statement",
                call,
                &format!("s3://{bucket}"),
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
            .await
    }

    /// Step `suspend-versioning`, when versioning was off before the lockdown and is on now (S3
    /// cannot return a bucket to "never versioned"; existing versions stay). Also recorded
    /// when it is off already but the containment turned it on (`turned_on`): a release that
    /// died after suspending it is retried, and the record lists every step.
    async fn restore_versioning(
        &self,
        runner: &mut Runner,
        bucket: &str,
        obs: &Observed,
        pre: &S3PreState,
        turned_on: bool,
    ) -> Result<(), StepFailed> {
        let live = obs.pre.versioning.clone();
        let on = live.as_deref() == Some("Enabled");
        if pre.versioning.as_deref() == Some("Enabled") || !(on || turned_on) {
            return Ok(());
        }
        runner
            .step(
                "suspend-versioning",
                &PUT_VERSIONING,
                &format!("s3://{bucket}"),
                "versioning → Suspended (a bucket cannot return to never-versioned; existing versions stay)".into(),
                || async {
                    if !on {
                        let now = live.as_deref().unwrap_or("never enabled");
                        return Ok(StepResult::AlreadyDone(format!("versioning {now}")));
                    }
                    self.set_versioning(bucket, BucketVersioningStatus::Suspended)
                        .await?;
                    Ok(StepResult::Changed("Enabled → Suspended".into()))
                },
            )
            .await
    }

    /// Step `disable-access-logging`, when the bucket did not log before the lockdown and logs
    /// now, or the containment turned logging on (as `suspend-versioning`).
    async fn restore_logging(
        &self,
        runner: &mut Runner,
        bucket: &str,
        obs: &Observed,
        pre: &S3PreState,
        turned_on: bool,
    ) -> Result<(), StepFailed> {
        let logging = obs.pre.logging.is_some();
        if pre.logging.is_some() || !(logging || turned_on) {
            return Ok(());
        }
        runner
            .step(
                "disable-access-logging",
                &PUT_LOGGING,
                &format!("s3://{bucket}"),
                "logging → off (as before)".into(),
                || async {
                    if !logging {
                        return Ok(StepResult::AlreadyDone("logging off".into()));
                    }
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
            .await
    }

    /// Step `tag-released` (merged into the tag set).
    async fn tag_released(
        &self,
        runner: &mut Runner,
        incident_id: &str,
        bucket: &str,
        obs: &Observed,
    ) -> Result<(), StepFailed> {
        runner
            .step(
                "tag-released",
                &PUT_TAGGING,
                &format!("s3://{bucket}"),
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

/// Whether the containment's record (`previous`, from the state machine) shows `step` in
/// place: changed by it, or found done (by an earlier attempt of the same containment).
fn contain_turned_on(previous: Option<&ContainmentRecord>, step: &str) -> bool {
    previous.is_some_and(|p| {
        p.steps.iter().any(|s| {
            s.step == step && matches!(s.outcome, Outcome::Succeeded | Outcome::AlreadyDone)
        })
    })
}
