//! The S3 calls the contain and release steps share, and the permissions they are declared
//! with (DeletePublicAccessBlock is authorised by `s3:PutBucketPublicAccessBlock`).

use std::collections::BTreeMap;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{
    BucketVersioningStatus, PublicAccessBlockConfiguration, Tag, Tagging, VersioningConfiguration,
};
use ir_core::permissions::{resource::S3_BUCKET, Permission};

use crate::LockdownS3;

pub(crate) const PUT_PUBLIC_ACCESS_BLOCK: Permission =
    Permission::new("s3:PutBucketPublicAccessBlock", S3_BUCKET);
pub(crate) const PUT_POLICY: Permission = Permission::new("s3:PutBucketPolicy", S3_BUCKET);
pub(crate) const PUT_VERSIONING: Permission = Permission::new("s3:PutBucketVersioning", S3_BUCKET);
pub(crate) const PUT_LOGGING: Permission = Permission::new("s3:PutBucketLogging", S3_BUCKET);
pub(crate) const PUT_TAGGING: Permission = Permission::new("s3:PutBucketTagging", S3_BUCKET);

pub(crate) const PERMISSIONS: &[Permission] = &[
    PUT_PUBLIC_ACCESS_BLOCK,
    PUT_POLICY,
    PUT_VERSIONING,
    PUT_LOGGING,
    PUT_TAGGING,
];

/// The error code S3 answered with (S3 sends some, e.g. HeadBucket's 404, without a body: the
/// SDK then names the status, `NotFound`).
pub(crate) fn code<E: ProvideErrorMetadata>(e: &E) -> &str {
    e.code().unwrap_or("")
}

pub(crate) fn err_text<E: std::error::Error>(e: E) -> String {
    aws_sdk_s3::error::DisplayErrorContext(e).to_string()
}

impl LockdownS3 {
    /// Merges `add` into the bucket's tag set (PutBucketTagging replaces the whole set).
    pub(crate) async fn merge_tags(
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

    pub(crate) async fn put_policy(
        &self,
        bucket: &str,
        doc: &serde_json::Value,
    ) -> Result<(), String> {
        self.s3
            .put_bucket_policy()
            .bucket(bucket)
            .policy(doc.to_string())
            .send()
            .await
            .map_err(err_text)?;
        Ok(())
    }

    /// Sets the four bucket-level Block Public Access flags.
    pub(crate) async fn set_public_access_block(
        &self,
        bucket: &str,
        [acls, ignore, policy, restrict]: [bool; 4],
    ) -> Result<(), String> {
        let cfg = PublicAccessBlockConfiguration::builder()
            .block_public_acls(acls)
            .ignore_public_acls(ignore)
            .block_public_policy(policy)
            .restrict_public_buckets(restrict)
            .build();
        self.s3
            .put_public_access_block()
            .bucket(bucket)
            .public_access_block_configuration(cfg)
            .send()
            .await
            .map_err(err_text)?;
        Ok(())
    }

    /// Sets the bucket's versioning status.
    pub(crate) async fn set_versioning(
        &self,
        bucket: &str,
        status: BucketVersioningStatus,
    ) -> Result<(), String> {
        self.s3
            .put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(VersioningConfiguration::builder().status(status).build())
            .send()
            .await
            .map_err(err_text)?;
        Ok(())
    }
}
