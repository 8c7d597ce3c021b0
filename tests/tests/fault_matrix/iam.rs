//! ir-quarantine-iam as the matrix drives it: a user with two access keys and a console
//! password, one key leaked.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use ir_core::actions::{ContainmentError, ContainmentRecord, ContainmentRequest};
use ir_quarantine_iam::{QuarantineConfig, Quarantiner};
use ir_tests::fixtures::safety;
use ir_tests::MotoServer;
use serde_json::{json, Value};

use crate::{approval, percent_decode, Case, Subject, World};

pub(crate) struct Iam(pub(crate) World);

impl Subject for Iam {
    fn name(&self) -> String {
        "ir-quarantine-iam".into()
    }

    async fn fresh(&self, n: usize) -> Case {
        let iam = aws_sdk_iam::Client::new(&self.0.sdk);
        let user = format!("deploy-bot-{n}");
        iam.create_user()
            .user_name(&user)
            .send()
            .await
            .expect("user");
        let mut ids = vec![(user.clone(), "<user>".to_string())];
        for k in 0..2 {
            let key = iam
                .create_access_key()
                .user_name(&user)
                .send()
                .await
                .expect("key");
            let id = key.access_key().expect("key").access_key_id().to_string();
            ids.push((id, format!("<key-{k}>")));
        }
        iam.create_login_profile()
            .user_name(&user)
            .password("Initial-Passw0rd!")
            .send()
            .await
            .expect("login profile");
        let leaked = ids[2].0.clone();
        let decision = self
            .0
            .decide("guardduty-iam-anomalous-behavior.json", n, |e| {
                let details = &mut e["detail"]["resource"]["accessKeyDetails"];
                details["accessKeyId"] = leaked.into();
                details["userName"] = user.clone().into();
            })
            .await;
        Case::new(decision, approval(), ids)
    }

    async fn run(
        &self,
        sdk: &SdkConfig,
        request: ContainmentRequest,
    ) -> Result<ContainmentRecord, ContainmentError> {
        Quarantiner {
            iam: ir_core::aws_client!(aws_sdk_iam, sdk),
            safety: safety(sdk),
            pre_state: ir_tests::fixtures::pre_state_of(sdk),
            config: QuarantineConfig {
                deactivate_all_keys: true,
            },
        }
        .handle(request)
        .await
    }

    async fn state(&self, case: &Case) -> Value {
        let iam = aws_sdk_iam::Client::new(&self.0.sdk);
        let user = &case.ids[0].0;
        let keys = iam
            .list_access_keys()
            .user_name(user)
            .send()
            .await
            .expect("keys");
        let keys: BTreeMap<String, String> = keys
            .access_key_metadata()
            .iter()
            .map(|k| {
                (
                    k.access_key_id().unwrap_or_default().to_string(),
                    format!("{:?}", k.status()),
                )
            })
            .collect();
        let login = iam.get_login_profile().user_name(user).send().await.is_ok();
        let tags = iam
            .list_user_tags()
            .user_name(user)
            .send()
            .await
            .expect("tags");
        let tags: BTreeMap<String, String> = tags
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect();
        let names = iam
            .list_user_policies()
            .user_name(user)
            .send()
            .await
            .expect("user policies");
        let mut policies = BTreeMap::new();
        for name in names.policy_names() {
            let doc = iam
                .get_user_policy()
                .user_name(user)
                .policy_name(name)
                .send()
                .await
                .expect("user policy");
            policies.insert(name.clone(), percent_decode(doc.policy_document()));
        }
        let attached = iam
            .list_attached_user_policies()
            .user_name(user)
            .send()
            .await
            .expect("attached");
        let attached: Vec<String> = attached
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_name().map(str::to_string))
            .collect();
        let state = json!({
            "keys": keys, "login_profile": login, "tags": tags,
            "inline_policies": policies, "attached_policies": attached,
            "pre_state": self.0.pre_states(case, user).await,
        });
        case.normal(state)
    }

    fn moto(&self) -> &MotoServer {
        &self.0.moto
    }
}
