//! The evidence bucket: content-addressed artifacts and hash-chained manifests.

/// The evidence bucket (objects under `incidents/`, with retention) and its KMS key.
pub const PERMISSIONS: &[ir_core::permissions::Permission] = {
    use ir_core::permissions::Permission;
    &[
        Permission::new("s3:ListBucket", "arn:{partition}:s3:::{evidence_bucket}"),
        Permission::new(
            "s3:GetObject",
            "arn:{partition}:s3:::{evidence_bucket}/incidents/*",
        ),
        Permission::new(
            "s3:PutObject",
            "arn:{partition}:s3:::{evidence_bucket}/incidents/*",
        ),
        Permission::new(
            "s3:PutObjectRetention",
            "arn:{partition}:s3:::{evidence_bucket}/incidents/*",
        ),
        Permission::new("kms:GenerateDataKey", "{evidence_key_arn}"),
        Permission::new("kms:Decrypt", "{evidence_key_arn}"),
    ]
};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ObjectLockMode, ServerSideEncryption};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use ir_core::incident::Incident;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{EvidenceConfig, EvidenceError};

pub const MANIFEST_SCHEMA: &str = "ir-evidence-manifest/1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactEntry {
    pub name: String,
    pub key: String,
    pub sha256: String,
    pub size: u64,
    /// The API calls the artifact was built from.
    pub source: Vec<String>,
    pub collected_at: DateTime<Utc>,
    pub content_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotEntry {
    pub volume_id: String,
    pub device: String,
    pub snapshot_id: String,
}

/// An artifact that could not be collected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub name: String,
    pub source: Vec<String>,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousManifest {
    pub key: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingRef {
    pub finding_id: String,
    pub finding_type: String,
    pub product: String,
    pub account_id: String,
    pub region: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema: String,
    pub incident_id: String,
    /// 1 for the first manifest of the incident, then +1.
    pub sequence: u32,
    pub created_at: DateTime<Utc>,
    pub collector: String,
    pub finding: FindingRef,
    /// The manifest before this one (`None` for sequence 1): the hash chain.
    pub previous: Option<PreviousManifest>,
    pub artifacts: Vec<ArtifactEntry>,
    pub snapshots: Vec<SnapshotEntry>,
    pub gaps: Vec<Gap>,
}

impl Manifest {
    /// Whether this manifest records the same evidence (artifact hashes, snapshots, gaps).
    fn same_evidence(
        &self,
        artifacts: &[ArtifactEntry],
        snapshots: &[SnapshotEntry],
        gaps: &[Gap],
    ) -> bool {
        let a = |v: &[ArtifactEntry]| {
            let mut x: Vec<(String, String)> = v
                .iter()
                .map(|e| (e.name.clone(), e.sha256.clone()))
                .collect();
            x.sort();
            x
        };
        let s = |v: &[SnapshotEntry]| {
            let mut x: Vec<String> = v.iter().map(|e| e.snapshot_id.clone()).collect();
            x.sort();
            x
        };
        let g = |v: &[Gap]| {
            let mut x: Vec<String> = v.iter().map(|e| e.name.clone()).collect();
            x.sort();
            x
        };
        a(&self.artifacts) == a(artifacts)
            && s(&self.snapshots) == s(snapshots)
            && g(&self.gaps) == g(gaps)
    }
}

/// The latest manifest as stored.
#[derive(Debug, Clone)]
pub struct Latest {
    pub key: String,
    pub sha256: String,
    pub manifest: Manifest,
}

pub struct Stored {
    pub key: String,
    pub entry: ArtifactEntry,
    pub reused: bool,
}

pub struct ManifestOutcome {
    pub key: String,
    pub sha256: String,
    pub manifest: Manifest,
    pub unchanged: bool,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Where an incident's evidence lives: `incidents/<account>/<region>/<incident id>/`, the
/// resource's account and Region in every key (a bucket policy or lifecycle rule can name an
/// account's evidence; an investigator sees where it came from).
pub fn incident_prefix(inc: &Incident) -> String {
    format!(
        "incidents/{}/{}/{}/",
        inc.account_id, inc.region, inc.incident_id
    )
}

pub fn manifest_prefix(inc: &Incident) -> String {
    format!("{}manifests/", incident_prefix(inc))
}

pub struct EvidenceStore<'a> {
    pub s3: &'a aws_sdk_s3::Client,
    pub config: &'a EvidenceConfig,
}

impl EvidenceStore<'_> {
    fn fail<E: std::error::Error>(&self, e: E) -> EvidenceError {
        EvidenceError::Store {
            bucket: self.config.bucket.clone(),
            message: aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
        }
    }

    /// Writes one object with SSE-KMS, COMPLIANCE retention and an S3-verified SHA-256.
    /// `only_if_new`: fail with `Ok(false)` instead of overwriting an existing key.
    async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        only_if_new: bool,
    ) -> Result<bool, EvidenceError> {
        let digest = Sha256::digest(&bytes);
        let mut put = self
            .s3
            .put_object()
            .bucket(&self.config.bucket)
            .key(key)
            .content_type("application/json")
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(base64::engine::general_purpose::STANDARD.encode(digest))
            .metadata("sha256", hex::encode(digest))
            .body(ByteStream::from(bytes));
        if let Some(kms) = &self.config.kms_key_id {
            put = put
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(kms);
        }
        if self.config.retention_days > 0 {
            let until = Utc::now() + Duration::days(self.config.retention_days);
            put = put
                .object_lock_mode(ObjectLockMode::Compliance)
                .object_lock_retain_until_date(aws_sdk_s3::primitives::DateTime::from_secs(
                    until.timestamp(),
                ));
        }
        if only_if_new {
            put = put.if_none_match("*");
        }
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if only_if_new && e.raw_response().is_some_and(|r| r.status().as_u16() == 412) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// The incident's latest manifest, if any.
    pub async fn latest(&self, inc: &Incident) -> Result<Option<Latest>, EvidenceError> {
        let prefix = manifest_prefix(inc);
        let mut newest: Option<String> = None;
        let mut token = None;
        loop {
            let out = self
                .s3
                .list_objects_v2()
                .bucket(&self.config.bucket)
                .prefix(&prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| self.fail(e))?;
            for o in out.contents() {
                if let Some(k) = o.key() {
                    if newest.as_deref().is_none_or(|n| k > n) {
                        newest = Some(k.to_string());
                    }
                }
            }
            token = out.next_continuation_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        let Some(key) = newest else { return Ok(None) };
        let obj = self
            .s3
            .get_object()
            .bucket(&self.config.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| self.fail(e))?;
        let bytes = obj
            .body
            .collect()
            .await
            .map_err(|e| EvidenceError::Store {
                bucket: self.config.bucket.clone(),
                message: format!("reading {key}: {e}"),
            })?
            .into_bytes();
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| EvidenceError::Store {
                bucket: self.config.bucket.clone(),
                message: format!("{key} is not a manifest: {e}"),
            })?;
        Ok(Some(Latest {
            sha256: sha256_hex(&bytes),
            key,
            manifest,
        }))
    }

    /// Stores an artifact under a key derived from its hash; an artifact with the same name and
    /// hash in the previous manifest is referenced, not written again.
    pub async fn put_artifact(
        &self,
        inc: &Incident,
        name: &str,
        value: &serde_json::Value,
        source: Vec<String>,
        collected_at: DateTime<Utc>,
        previous: Option<&Manifest>,
    ) -> Result<Stored, EvidenceError> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| EvidenceError::Store {
            bucket: self.config.bucket.clone(),
            message: format!("serialising {name}: {e}"),
        })?;
        let sha256 = sha256_hex(&bytes);
        if let Some(prev) = previous.and_then(|m| {
            m.artifacts
                .iter()
                .find(|a| a.name == name && a.sha256 == sha256)
        }) {
            return Ok(Stored {
                key: prev.key.clone(),
                entry: prev.clone(),
                reused: true,
            });
        }
        let key = format!("{}artifacts/{name}/{sha256}.json", incident_prefix(inc));
        let size = bytes.len() as u64;
        self.put(&key, bytes, false).await?;
        Ok(Stored {
            key: key.clone(),
            entry: ArtifactEntry {
                name: name.into(),
                key,
                sha256,
                size,
                source,
                collected_at,
                content_type: "application/json".into(),
            },
            reused: false,
        })
    }

    /// Writes the next manifest of the chain, unless the evidence equals the latest manifest's.
    pub async fn write_manifest(
        &self,
        inc: &Incident,
        artifacts: Vec<ArtifactEntry>,
        snapshots: Vec<SnapshotEntry>,
        gaps: Vec<Gap>,
        mut previous: Option<Latest>,
    ) -> Result<ManifestOutcome, EvidenceError> {
        for _attempt in 0..3 {
            if let Some(p) = &previous {
                if p.manifest.same_evidence(&artifacts, &snapshots, &gaps) {
                    return Ok(ManifestOutcome {
                        key: p.key.clone(),
                        sha256: p.sha256.clone(),
                        manifest: p.manifest.clone(),
                        unchanged: true,
                    });
                }
            }
            let sequence = previous.as_ref().map_or(1, |p| p.manifest.sequence + 1);
            let manifest = Manifest {
                schema: MANIFEST_SCHEMA.into(),
                incident_id: inc.incident_id.clone(),
                sequence,
                created_at: Utc::now(),
                collector: format!("{} {}", crate::FUNCTION_NAME, env!("CARGO_PKG_VERSION")),
                finding: FindingRef {
                    finding_id: inc.finding_id.clone(),
                    finding_type: inc.finding_type.clone(),
                    product: inc.product.clone(),
                    account_id: inc.account_id.clone(),
                    region: inc.region.clone(),
                },
                previous: previous.as_ref().map(|p| PreviousManifest {
                    key: p.key.clone(),
                    sha256: p.sha256.clone(),
                }),
                artifacts: artifacts.clone(),
                snapshots: snapshots.clone(),
                gaps: gaps.clone(),
            };
            let bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| EvidenceError::Store {
                bucket: self.config.bucket.clone(),
                message: format!("serialising the manifest: {e}"),
            })?;
            let sha256 = sha256_hex(&bytes);
            let key = format!("{}{sequence:06}.json", manifest_prefix(inc));
            if self.put(&key, bytes, true).await? {
                return Ok(ManifestOutcome {
                    key,
                    sha256,
                    manifest,
                    unchanged: false,
                });
            }
            // Another run wrote this sequence first: chain onto it.
            previous = self.latest(inc).await?;
        }
        Err(EvidenceError::Store {
            bucket: self.config.bucket.clone(),
            message: "could not append a manifest after 3 concurrent writes".into(),
        })
    }
}
