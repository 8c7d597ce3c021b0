//! Reading the bucket (no change): tags, Block Public Access, policy, versioning, logging and
//! Object Lock — what the playbook works from and what it records as the pre-state.

use std::collections::BTreeMap;

use aws_sdk_s3::types::ObjectLockEnabled;
use ir_core::actions::ContainmentError;
use ir_core::permissions::{resource::S3_BUCKET, Permission};

use crate::s3::{code, err_text};
use crate::{LockdownS3, Observed, S3PreState};

/// HeadBucket is authorised by `s3:ListBucket`.
pub(crate) const HEAD_BUCKET: Permission = Permission::new("s3:ListBucket", S3_BUCKET);
pub(crate) const GET_TAGGING: Permission = Permission::new("s3:GetBucketTagging", S3_BUCKET);
pub(crate) const GET_PUBLIC_ACCESS_BLOCK: Permission =
    Permission::new("s3:GetBucketPublicAccessBlock", S3_BUCKET);
pub(crate) const GET_POLICY: Permission = Permission::new("s3:GetBucketPolicy", S3_BUCKET);
pub(crate) const GET_VERSIONING: Permission = Permission::new("s3:GetBucketVersioning", S3_BUCKET);
pub(crate) const GET_LOGGING: Permission = Permission::new("s3:GetBucketLogging", S3_BUCKET);
pub(crate) const GET_OBJECT_LOCK: Permission =
    Permission::new("s3:GetBucketObjectLockConfiguration", S3_BUCKET);
pub(crate) const PERMISSIONS: &[Permission] = &[
    HEAD_BUCKET,
    GET_TAGGING,
    GET_PUBLIC_ACCESS_BLOCK,
    GET_POLICY,
    GET_VERSIONING,
    GET_LOGGING,
    GET_OBJECT_LOCK,
];
impl LockdownS3 {
    /// Reads the bucket's tags, Block Public Access, policy, versioning, logging, Object Lock.
    pub(crate) async fn read_live(&self, bucket: &str) -> Result<Observed, ContainmentError> {
        if let Err(e) = self.s3.head_bucket().bucket(bucket).send().await {
            let not_found = matches!(code(&e), "NotFound" | "NoSuchBucket")
                || e.raw_response().map(|r| r.status().as_u16()) == Some(404);
            return Err(if not_found {
                ContainmentError::NotFound(format!("s3://{bucket}"))
            } else {
                ContainmentError::read(HEAD_BUCKET.action, err_text(e))
            });
        }
        let tags = match self.s3.get_bucket_tagging().bucket(bucket).send().await {
            Ok(o) => o
                .tag_set()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect(),
            Err(e) if code(&e) == "NoSuchTagSet" => BTreeMap::new(),
            Err(e) => return Err(ContainmentError::read(GET_TAGGING.action, err_text(e))),
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
            Err(e) => {
                return Err(ContainmentError::read(
                    GET_PUBLIC_ACCESS_BLOCK.action,
                    err_text(e),
                ))
            }
        };
        let policy = match self.s3.get_bucket_policy().bucket(bucket).send().await {
            Ok(o) => match o.policy() {
                Some(p) => Some(
                    serde_json::from_str(p)
                        .map_err(|e| ContainmentError::read("bucket policy JSON", e.to_string()))?,
                ),
                None => None,
            },
            Err(e) if code(&e) == "NoSuchBucketPolicy" => None,
            Err(e) => return Err(ContainmentError::read(GET_POLICY.action, err_text(e))),
        };
        let versioning = self
            .s3
            .get_bucket_versioning()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| ContainmentError::read(GET_VERSIONING.action, err_text(e)))?
            .status()
            .map(|s| s.as_str().to_string());
        let logging = self
            .s3
            .get_bucket_logging()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| ContainmentError::read(GET_LOGGING.action, err_text(e)))?
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
}
