//! ir-lockdown-s3 as the matrix drives it: a tagged bucket with a cross-account grant, access
//! logs into the evidence bucket.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_s3::types::{Tag, Tagging};
use ir_core::actions::{ContainmentError, ContainmentRecord, ContainmentRequest};
use ir_lockdown_s3::{LockdownConfig, LockdownS3};
use ir_tests::fixtures::safety;
use ir_tests::MotoServer;
use serde_json::{json, Value};

use crate::{Case, Subject, World};

const EVIDENCE: &str = "ir-evidence-111122223333";

pub(crate) struct S3(pub(crate) World);

impl Subject for S3 {
    fn name(&self) -> String {
        "ir-lockdown-s3".into()
    }

    async fn fresh(&self, n: usize) -> Case {
        let s3 = self.0.moto.s3_client(&self.0.sdk);
        if n == 0 {
            s3.create_bucket()
                .bucket(EVIDENCE)
                .acl(aws_sdk_s3::types::BucketCannedAcl::from(
                    "log-delivery-write",
                ))
                .send()
                .await
                .expect("evidence bucket");
        }
        let bucket = format!("acme-exports-{n}");
        s3.create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("bucket");
        let policy = json!({"Version": "2012-10-17", "Statement": [{
            "Sid": "AllowPartnerRead", "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
            "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{bucket}/*")
        }]});
        s3.put_bucket_policy()
            .bucket(&bucket)
            .policy(policy.to_string())
            .send()
            .await
            .expect("policy");
        let tag = Tag::builder()
            .key("data-class")
            .value("confidential")
            .build()
            .expect("tag");
        s3.put_bucket_tagging()
            .bucket(&bucket)
            .tagging(Tagging::builder().tag_set(tag).build().expect("tagging"))
            .send()
            .await
            .expect("tags");
        let decision = self
            .0
            .decide("guardduty-s3-block-public-access-disabled.json", n, |e| {
                let details = &mut e["detail"]["resource"]["s3BucketDetails"][0];
                details["name"] = bucket.clone().into();
                details["arn"] = format!("arn:aws:s3:::{bucket}").into();
            })
            .await;
        Case::new(decision, None, vec![(bucket, "<bucket>".to_string())])
    }

    async fn run(
        &self,
        sdk: &SdkConfig,
        request: ContainmentRequest,
    ) -> Result<ContainmentRecord, ContainmentError> {
        LockdownS3 {
            s3: self.0.moto.s3_client(sdk),
            safety: safety(sdk),
            pre_state: ir_tests::fixtures::pre_state_of(sdk),
            config: LockdownConfig {
                evidence_bucket: Some(EVIDENCE.into()),
                object_lock: false,
            },
        }
        .handle(request)
        .await
    }

    async fn state(&self, case: &Case) -> Value {
        let s3 = self.0.moto.s3_client(&self.0.sdk);
        let bucket = &case.ids[0].0;
        let bpa = s3
            .get_public_access_block()
            .bucket(bucket)
            .send()
            .await
            .ok()
            .and_then(|o| o.public_access_block_configuration().cloned())
            .map(|c| format!("{c:?}"));
        let policy = s3
            .get_bucket_policy()
            .bucket(bucket)
            .send()
            .await
            .ok()
            .and_then(|o| o.policy().map(str::to_string));
        let versioning = s3
            .get_bucket_versioning()
            .bucket(bucket)
            .send()
            .await
            .expect("versioning");
        let logging = s3
            .get_bucket_logging()
            .bucket(bucket)
            .send()
            .await
            .expect("logging");
        let tags = s3
            .get_bucket_tagging()
            .bucket(bucket)
            .send()
            .await
            .map(|t| {
                t.tag_set()
                    .iter()
                    .map(|t| (t.key().to_string(), t.value().to_string()))
                    .collect::<BTreeMap<_, _>>()
            })
            .unwrap_or_default();
        let state = json!({
            "public_access_block": bpa, "policy": policy,
            "versioning": format!("{:?}", versioning.status()),
            "logging": format!("{:?}", logging.logging_enabled().map(|l| l.target_bucket())),
            "tags": tags,
            "pre_state": self.0.pre_states(case, bucket).await,
        });
        case.normal(state)
    }

    fn moto(&self) -> &MotoServer {
        &self.0.moto
    }
}
