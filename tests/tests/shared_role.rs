//! One instance role, two playbooks and a role that changes under an isolation: ir-isolate-ec2
//! and ir-quarantine-iam each revoke an instance's credentials under their own policy name (they
//! hold different leases), and a role the instance comes to hold after its pre-state was
//! recorded is recorded too, so the release removes what was put on it.

use aws_sdk_ec2::types::IamInstanceProfileSpecification;
use ir_core::actions::{
    quarantine_instance_policy_name, revoke_instance_policy_name, ContainmentRecord,
    ContainmentRequest, Mode, RecordStatus,
};
use ir_core::audit::Outcome;
use ir_core::prestate::PreStateKey;
use ir_core::TriageDecision;
use ir_isolate_ec2::{IsolateConfig, Isolator};
use ir_quarantine_iam::{QuarantineConfig, Quarantiner};
use ir_tests::fixtures::{
    self, assert_declared, event_json, instance_in, instance_profile, live_triage, vpc_with_subnet,
};
use ir_tests::MotoServer;
use ir_triage::Triage;
use serde_json::Value;

struct World {
    _moto: MotoServer,
    ec2: aws_sdk_ec2::Client,
    iam: aws_sdk_iam::Client,
    triage: Triage,
    isolator: Isolator,
    quarantiner: Quarantiner,
    instance_id: String,
}

/// An instance holding `batch-role` through `batch-profile`.
async fn world() -> World {
    let moto = MotoServer::start().expect("moto");
    let sdk = moto.sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let iam = aws_sdk_iam::Client::new(&sdk);
    let (_, subnet) = vpc_with_subnet(&ec2, "10.30").await;
    let (instance_id, _) = instance_in(&ec2, &subnet).await;
    let w = World {
        triage: live_triage(&sdk, "incidents").await,
        isolator: fixtures::isolator(&sdk, IsolateConfig::default()).await,
        quarantiner: Quarantiner {
            iam: iam.clone(),
            safety: fixtures::safety(&sdk),
            pre_state: fixtures::pre_state_store(&sdk).await,
            config: QuarantineConfig {
                deactivate_all_keys: true,
            },
        },
        _moto: moto,
        ec2,
        iam,
        instance_id,
    };
    w.associate("batch-role", "batch-profile").await;
    w
}

impl World {
    /// Gives the instance a new profile holding a new role `role`.
    async fn associate(&self, role: &str, profile: &str) {
        let arn = instance_profile(&self.iam, role, profile).await;
        self.ec2
            .associate_iam_instance_profile()
            .instance_id(&self.instance_id)
            .iam_instance_profile(IamInstanceProfileSpecification::builder().arn(arn).build())
            .send()
            .await
            .expect("associate the profile");
    }

    /// The real triage decision for `event`, pointed at this instance (and, for a stolen
    /// session, at its role), as finding `n`.
    async fn decision(&self, event: &str, n: usize) -> TriageDecision {
        let text = event_json(event)
            .to_string()
            .replace("i-0d4e5f6a7b8c90004", &self.instance_id)
            .replace("etl-runner-role", "batch-role");
        let mut e: Value = serde_json::from_str(&text).expect("event");
        e["detail"]["resource"]["instanceDetails"]["instanceId"] = self.instance_id.clone().into();
        e["detail"]["id"] = format!("finding-{n}").into();
        e["detail"]["arn"] = format!("{}-{n}", e["detail"]["arn"].as_str().unwrap_or("")).into();
        self.triage.handle(e).await.expect("triage").primary
    }

    async fn isolation(&self, n: usize) -> TriageDecision {
        self.decision("guardduty-ec2-bitcointool-dns.json", n).await
    }

    async fn stolen_session(&self, n: usize) -> TriageDecision {
        self.decision("guardduty-iam-instance-credential-exfiltration.json", n)
            .await
    }

    async fn isolate(
        &self,
        d: &TriageDecision,
        mode: Mode,
        previous: Option<ContainmentRecord>,
    ) -> ContainmentRecord {
        let rec = self
            .isolator
            .handle(request(d, mode, previous))
            .await
            .expect("isolation");
        assert_declared(ir_isolate_ec2::FUNCTION_NAME, &rec);
        assert_eq!(rec.status, RecordStatus::Completed, "{:#?}", rec.steps);
        rec
    }

    async fn quarantine(&self, d: &TriageDecision, mode: Mode) -> ContainmentRecord {
        let rec = self
            .quarantiner
            .handle(request(d, mode, None))
            .await
            .expect("quarantine");
        assert_declared(ir_quarantine_iam::FUNCTION_NAME, &rec);
        assert_eq!(rec.status, RecordStatus::Completed, "{:#?}", rec.steps);
        rec
    }

    /// The inline policies of `role`, sorted.
    async fn policies(&self, role: &str) -> Vec<String> {
        let out = self.iam.list_role_policies().role_name(role).send().await;
        let mut names = out.expect("list role policies").policy_names().to_vec();
        names.sort();
        names
    }
}

fn request(
    d: &TriageDecision,
    mode: Mode,
    previous: Option<ContainmentRecord>,
) -> ContainmentRequest {
    ContainmentRequest {
        mode,
        decision: d.clone(),
        approval: None,
        previous,
    }
}

#[tokio::test]
async fn each_playbooks_release_keeps_the_others_revocation_of_the_instance() {
    let w = world().await;
    let id = w.instance_id.clone();
    let ours = revoke_instance_policy_name(&id);
    let theirs = quarantine_instance_policy_name(&id);
    let both = {
        let mut v = vec![ours.clone(), theirs.clone()];
        v.sort();
        v
    };

    // Quarantine of the stolen session, isolation of the instance; the isolation released
    // first (a false positive for the instance, not for the stolen credentials).
    let session = w.stolen_session(1).await;
    assert_eq!(session.tier.to_string(), "auto", "{:?}", session.reasons);
    w.quarantine(&session, Mode::Contain).await;
    let iso = w.isolation(1).await;
    let contained = w.isolate(&iso, Mode::Contain, None).await;
    assert_eq!(w.policies("batch-role").await, both);
    w.isolate(&iso, Mode::Release, Some(contained)).await;
    assert_eq!(
        w.policies("batch-role").await,
        [theirs],
        "the quarantine's revocation stays in force"
    );
    w.quarantine(&session, Mode::Release).await;
    assert!(w.policies("batch-role").await.is_empty());

    // And the other way round, as two new incidents.
    let session = w.stolen_session(2).await;
    let iso = w.isolation(2).await;
    let contained = w.isolate(&iso, Mode::Contain, None).await;
    w.quarantine(&session, Mode::Contain).await;
    assert_eq!(w.policies("batch-role").await, both);
    w.quarantine(&session, Mode::Release).await;
    assert_eq!(
        w.policies("batch-role").await,
        [ours],
        "the isolation's revocation stays in force"
    );
    w.isolate(&iso, Mode::Release, Some(contained)).await;
    assert!(w.policies("batch-role").await.is_empty());
}

#[tokio::test]
async fn a_role_the_isolated_instance_came_to_hold_is_recorded_and_released() {
    let w = world().await;
    let iso = w.isolation(1).await;
    let first = w.isolate(&iso, Mode::Contain, None).await;
    let key = PreStateKey::new(
        &iso.incident.account_id,
        &iso.incident.region,
        &w.instance_id,
    );
    let roles = |stored: &Value| stored["role_names"].clone();
    let stored = w
        .isolator
        .pre_state
        .get(&key)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(roles(&stored.state), serde_json::json!(["batch-role"]));

    // Someone gives the isolated instance another role; the finding arrives again.
    w.associate("other-role", "other-profile").await;
    let again = w.isolate(&iso, Mode::Contain, None).await;
    let step = again
        .steps
        .iter()
        .find(|s| s.step == "revoke-instance-credentials-other-role")
        .expect("the new role is revoked");
    assert_eq!(step.outcome, Outcome::Succeeded, "{step:?}");
    assert_eq!(
        w.policies("other-role").await,
        [revoke_instance_policy_name(&w.instance_id)]
    );
    // The stored pre-state now knows it (a retry that finds no profile any more, and the
    // release, read it there), and still holds the original profile.
    let stored = w
        .isolator
        .pre_state
        .get(&key)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(
        roles(&stored.state),
        serde_json::json!(["batch-role", "other-role"])
    );
    let repeat = w.isolate(&iso, Mode::Contain, None).await;
    assert!(
        repeat.steps.iter().all(|s| s.outcome != Outcome::Succeeded),
        "{:#?}",
        repeat.steps
    );

    // Released with the first containment's record, which never named other-role.
    w.isolate(&iso, Mode::Release, Some(first)).await;
    assert!(w.policies("batch-role").await.is_empty());
    assert!(
        w.policies("other-role").await.is_empty(),
        "the revocation on the role recorded since is removed too"
    );
}
