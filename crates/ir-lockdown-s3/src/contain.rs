//! Lockdown, in order: the Deny first (S3 refuses a policy with a public statement once
//! `BlockPublicPolicy` is on), then Block Public Access, versioning, access logging, the
//! optional Object Lock, and the marker tags.

use aws_sdk_s3::types::{
    BucketLoggingStatus, BucketVersioningStatus, LoggingEnabled, ObjectLockConfiguration,
    ObjectLockEnabled,
};
use ir_core::actions::{
    ContainmentRequest, Runner, StepFailed, StepResult, TAG_INCIDENT, TAG_STATUS,
};
use ir_core::permissions::{resource::S3_BUCKET, Permission};
use ir_core::Tier;

use crate::policy::{
    deny_sid, has_statement, merge_deny, offending_principal, policy_size, POLICY_MAX_BYTES,
};
use crate::s3::{
    code, err_text, PUT_LOGGING, PUT_POLICY, PUT_PUBLIC_ACCESS_BLOCK, PUT_TAGGING, PUT_VERSIONING,
};
use crate::{LockdownS3, Observed};

pub(crate) const PUT_OBJECT_LOCK: Permission =
    Permission::new("s3:PutBucketObjectLockConfiguration", S3_BUCKET);

pub(crate) const PERMISSIONS: &[Permission] = &[PUT_OBJECT_LOCK];

impl LockdownS3 {
    /// The lockdown steps.
    pub(crate) async fn lock_down(
        &self,
        runner: &mut Runner,
        req: &ContainmentRequest,
        bucket: &str,
        obs: &Observed,
    ) -> Result<(), StepFailed> {
        self.deny_principal(runner, req, bucket, obs).await?;
        self.block_public_access(runner, bucket, obs).await?;
        self.enable_versioning(runner, bucket, obs).await?;
        self.enable_logging(runner, bucket, obs).await?;
        self.object_lock(runner, req, bucket, obs).await?;
        self.tag_locked_down(runner, &req.decision.incident_id, bucket, obs)
            .await
    }

    /// Step `block-public-access`: all four bucket-level settings on.
    async fn block_public_access(
        &self,
        runner: &mut Runner,
        bucket: &str,
        obs: &Observed,
    ) -> Result<(), StepFailed> {
        let bpa_on = obs.pre.public_access_block == Some([true; 4]);
        runner
            .step(
                "block-public-access",
                &PUT_PUBLIC_ACCESS_BLOCK,
                &format!("s3://{bucket}"),
                "all four Block Public Access settings on".into(),
                || async {
                    if bpa_on {
                        return Ok(StepResult::AlreadyDone("already fully blocked".into()));
                    }
                    self.set_public_access_block(bucket, [true; 4]).await?;
                    Ok(StepResult::Changed(format!(
                        "{:?} → all on",
                        obs.pre.public_access_block
                    )))
                },
            )
            .await
    }

    /// Step `deny-principal`: this incident's Deny merged into the bucket policy. Skipped, with
    /// the reason, when the finding names no principal that can be denied safely or when the
    /// merged policy would pass S3's 20 KB limit; the other steps still run.
    async fn deny_principal(
        &self,
        runner: &mut Runner,
        req: &ContainmentRequest,
        bucket: &str,
        obs: &Observed,
    ) -> Result<(), StepFailed> {
        let target = format!("s3://{bucket}");
        let sid = deny_sid(&req.decision.incident_id);
        let incident = &req.decision.incident;
        let principal = match offending_principal(incident) {
            Ok(p) => p,
            Err(why) => {
                runner.skip("deny-principal", &target, why);
                return Ok(());
            }
        };
        let present = has_statement(obs.policy.as_ref(), &sid);
        let merged = merge_deny(
            obs.policy.as_ref(),
            &sid,
            &principal,
            bucket,
            &incident.partition,
        );
        let size = policy_size(&merged);
        if !present && size > POLICY_MAX_BYTES {
            runner.skip(
                "deny-principal",
                &target,
                format!("the bucket policy with the Deny would be {size} bytes, over S3's {POLICY_MAX_BYTES}: not added (deny {principal} by hand)"),
            );
            return Ok(());
        }
        let kept = obs
            .policy
            .as_ref()
            .and_then(|p| p["Statement"].as_array().map(Vec::len))
            .unwrap_or(0);
        let plan =
            format!("add Deny s3:* for {principal} as {sid}, keeping {kept} existing statement(s)");
        runner
            .step("deny-principal", &PUT_POLICY, &target, plan, || async {
                if present {
                    return Ok(StepResult::AlreadyDone(format!(
                        "{sid} already in the policy"
                    )));
                }
                self.put_policy(bucket, &merged).await?;
                Ok(StepResult::Changed(format!(
                    "{sid} denies {principal}; {kept} existing statement(s) kept"
                )))
            })
            .await
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
                    self.set_versioning(bucket, BucketVersioningStatus::Enabled)
                        .await?;
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
        let prefix = format!("access-logs/{bucket}/");
        // Logging into our evidence prefix already: an earlier attempt of this containment (or
        // another incident's) turned it on; recorded as done, so the release still turns it off.
        let ours = |evidence: &str, now: &str| now == format!("{evidence}/{prefix}");
        match (&self.config.evidence_bucket, &obs.pre.logging) {
            (evidence, Some(existing))
                if evidence.as_deref().is_none_or(|e| !ours(e, existing)) =>
            {
                runner.skip(
                    "enable-access-logging",
                    &target,
                    format!("already logging to s3://{existing}"),
                )
            }
            (Some(evidence), now) => {
                runner
                    .step(
                        "enable-access-logging",
                        &PUT_LOGGING,
                        &target,
                        format!("server access logs → s3://{evidence}/{prefix}"),
                        || async {
                            if let Some(now) = now {
                                return Ok(StepResult::AlreadyDone(format!("logging to s3://{now}")));
                            }
                            let logging = LoggingEnabled::builder()
                                .target_bucket(evidence)
                                .target_prefix(&prefix)
                                .build()
                                .map_err(|e| e.to_string())?;
                            let out = self
                                .s3
                                .put_bucket_logging()
                                .bucket(bucket)
                                .bucket_logging_status(
                                    BucketLoggingStatus::builder()
                                        .logging_enabled(logging)
                                        .build(),
                                )
                                .send()
                                .await;
                            match out {
                                Ok(_) => Ok(StepResult::Changed(format!(
                                    "logging to s3://{evidence}/{prefix}"
                                ))),
                                // Logs only go to a bucket of the same account in the source
                                // bucket's Region (S3 spells the code both ways).
                                Err(e)
                                    if matches!(
                                        code(&e),
                                        "CrossLocationLoggingProhibitted"
                                            | "CrossLocationLoggingProhibited"
                                            | "InvalidTargetBucketForLogging"
                                    ) =>
                                {
                                    Ok(StepResult::Refused(format!(
                                        "s3://{evidence} cannot take this bucket's logs (another Region or account): {}",
                                        err_text(e)
                                    )))
                                }
                                Err(e) => Err(err_text(e)),
                            }
                        },
                    )
                    .await?;
            }
            (None, _) => runner.skip(
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
}
