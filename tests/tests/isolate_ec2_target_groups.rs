//! ir-isolate-ec2 and load balancers: the instance is deregistered from its target groups
//! before the swap (their flows are tracked whatever the security groups say), and registered
//! again on release.

use aws_sdk_elasticloadbalancingv2::types::{TargetDescription, TargetTypeEnum};
use ir_core::actions::{ContainmentRecord, ContainmentRequest, Mode, RecordStatus};
use ir_core::audit::Outcome;
use ir_isolate_ec2::{IsolateConfig, Isolator};
use ir_tests::fixtures::{
    assert_declared, event_json, instance_in, isolator, live_triage, vpc_with_subnet,
};
use ir_tests::MotoServer;

struct Lb {
    _moto: MotoServer,
    elbv2: aws_sdk_elasticloadbalancingv2::Client,
    isolator: Isolator,
    /// The real triage decision for a C&C finding on the instance (triaged once: a repeat
    /// would be a duplicate).
    decision: ir_core::TriageDecision,
    instance_id: String,
    private_ip: String,
    /// ARNs of the instance-type group, the ip-type group and a group it is not in.
    web: String,
    by_ip: String,
    other: String,
    /// An `ip` group of another VPC holding the same address (another host there).
    twin: String,
}

async fn lb_world() -> Lb {
    let moto = MotoServer::start().expect("moto");
    let sdk = moto.sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let elbv2 = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
    let (vpc_id, subnet_id) = vpc_with_subnet(&ec2, "10.40").await;
    let (instance_id, private_ip) = instance_in(&ec2, &subnet_id).await;
    // Another VPC with the same private range: its host at the same address is another host.
    let (twin_vpc, _) = vpc_with_subnet(&ec2, "10.40").await;
    let group = |name: &'static str, kind: TargetTypeEnum, vpc_id: &String| {
        let (elbv2, vpc_id) = (elbv2.clone(), vpc_id.clone());
        async move {
            elbv2
                .create_target_group()
                .name(name)
                .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
                .port(80)
                .vpc_id(vpc_id)
                .target_type(kind)
                .send()
                .await
                .unwrap()
                .target_groups()[0]
                .target_group_arn()
                .unwrap()
                .to_string()
        }
    };
    let web = group("web", TargetTypeEnum::Instance, &vpc_id).await;
    let by_ip = group("metrics-by-ip", TargetTypeEnum::Ip, &vpc_id).await;
    let other = group("other", TargetTypeEnum::Instance, &vpc_id).await;
    let twin = group("twin-vpc-by-ip", TargetTypeEnum::Ip, &twin_vpc).await;
    let register = |arn: &str, id: &str, port: i32| {
        elbv2
            .register_targets()
            .target_group_arn(arn)
            .targets(TargetDescription::builder().id(id).port(port).build())
            .send()
    };
    register(&web, &instance_id, 8080).await.unwrap();
    register(&by_ip, &private_ip, 9100).await.unwrap();
    // Another instance behind "other" and "web": it must stay registered.
    let (neighbour, _) = instance_in(&ec2, &subnet_id).await;
    register(&other, &neighbour, 80).await.unwrap();
    register(&twin, &private_ip, 80).await.unwrap();
    let isolator = isolator(&sdk, IsolateConfig::default()).await;
    let mut e = event_json("guardduty-ec2-c2-activity.json");
    e["detail"]["resource"]["instanceDetails"]["instanceId"] = instance_id.clone().into();
    let triage = live_triage(&sdk, "incidents").await;
    let decision = triage.handle(e).await.expect("triage").primary;
    Lb {
        decision,
        _moto: moto,
        elbv2,
        isolator,
        instance_id,
        private_ip,
        web,
        by_ip,
        other,
        twin,
    }
}

impl Lb {
    /// `(id, port)` of every target registered in `arn`.
    async fn targets(&self, arn: &str) -> Vec<(String, Option<i32>)> {
        let out = self
            .elbv2
            .describe_target_health()
            .target_group_arn(arn)
            .send()
            .await
            .unwrap();
        let mut t: Vec<_> = out
            .target_health_descriptions()
            .iter()
            .filter_map(|d| d.target())
            .map(|t| (t.id().unwrap().to_string(), t.port()))
            .collect();
        t.sort();
        t
    }

    async fn run(&self, mode: Mode) -> ContainmentRecord {
        let rec = self.invoke(mode, false).await;
        assert_eq!(rec.status, RecordStatus::Completed, "{:#?}", rec.steps);
        rec
    }

    async fn invoke(&self, mode: Mode, dry_run: bool) -> ContainmentRecord {
        let mut decision = self.decision.clone();
        decision.dry_run = dry_run;
        let rec = self
            .isolator
            .handle(ContainmentRequest {
                mode,
                decision,
                approval: None,
                previous: None,
            })
            .await
            .expect("isolator");
        assert_declared(ir_isolate_ec2::FUNCTION_NAME, &rec);
        rec
    }
}

fn outcome(rec: &ContainmentRecord, step: &str) -> Option<Outcome> {
    rec.steps.iter().find(|s| s.step == step).map(|s| s.outcome)
}

#[tokio::test]
async fn a_standalone_instance_leaves_its_target_groups_before_the_swap_and_release_puts_it_back() {
    let w = lb_world().await;
    let neighbour = w.targets(&w.other).await;

    let rec = w.run(Mode::Contain).await;
    assert_eq!(outcome(&rec, "deregister-web"), Some(Outcome::Succeeded));
    assert_eq!(
        outcome(&rec, "deregister-metrics-by-ip"),
        Some(Outcome::Succeeded)
    );
    assert_eq!(w.targets(&w.web).await, vec![]);
    assert_eq!(w.targets(&w.by_ip).await, vec![]);
    assert_eq!(w.targets(&w.other).await, neighbour, "others untouched");
    assert_eq!(
        w.targets(&w.twin).await,
        vec![(w.private_ip.clone(), Some(80))],
        "the same address in another VPC is another host"
    );
    // Deregistered before any ENI swap: a load balancer must not keep sending users (and the
    // attacker's tracked flows) to it while it is being cut off.
    let pos = |prefix: &str| rec.steps.iter().position(|s| s.step.starts_with(prefix));
    assert!(pos("deregister-") < pos("untrack-") && pos("untrack-").is_some());

    // The same finding again (or the retry of an attempt that died after the deregistration):
    // nothing left to deregister, and the record still shows the groups it was taken out of.
    let again = w.run(Mode::Contain).await;
    assert_eq!(outcome(&again, "deregister-targets"), None);
    assert_eq!(
        outcome(&again, "deregister-web"),
        Some(Outcome::AlreadyDone)
    );
    assert_eq!(
        outcome(&again, "deregister-metrics-by-ip"),
        Some(Outcome::AlreadyDone)
    );

    let released = w.run(Mode::Release).await;
    assert_eq!(outcome(&released, "register-web"), Some(Outcome::Succeeded));
    assert_eq!(
        w.targets(&w.web).await,
        vec![(w.instance_id.clone(), Some(8080))],
        "back on its own port"
    );
    assert_eq!(
        w.targets(&w.by_ip).await,
        vec![(w.private_ip.clone(), Some(9100))]
    );
    let twice = w.run(Mode::Release).await;
    assert_eq!(outcome(&twice, "register-web"), Some(Outcome::AlreadyDone));
}

#[tokio::test]
async fn dry_run_plans_the_deregistration_and_changes_nothing() {
    let w = lb_world().await;
    let rec = w.invoke(Mode::Contain, true).await;
    assert_eq!(rec.status, RecordStatus::Planned);
    let step = rec
        .steps
        .iter()
        .find(|s| s.step == "deregister-web")
        .expect("planned");
    assert_eq!(step.outcome, Outcome::DryRun);
    assert!(
        step.detail
            .as_deref()
            .is_some_and(|d| d.contains(&format!("{}:8080", w.instance_id))),
        "{step:?}"
    );
    assert_eq!(
        w.targets(&w.web).await,
        vec![(w.instance_id.clone(), Some(8080))]
    );
}
