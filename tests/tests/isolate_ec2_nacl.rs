//! ir-isolate-ec2's optional network ACL step (`IR_NACL_ISOLATION`): flows that NAT gateways,
//! load balancers and endpoints in other subnets track, which security groups cannot cut, are
//! cut by deny rules for the instance's own addresses in every ACL of its VPC.

use ir_core::actions::{ContainmentRecord, ContainmentRequest, Mode, RecordStatus};
use ir_core::audit::Outcome;
use ir_isolate_ec2::IsolateConfig;
use ir_tests::fixtures::{
    assert_declared, event_json, instance_in, isolator_as, live_triage, pre_state_store,
    vpc_with_subnet,
};
use ir_tests::pipeline::function_sdk;
use ir_tests::MotoServer;

/// One VPC with three subnets, each with its own network ACL: the instance's (the VPC's default
/// ACL), a NAT subnet's whose rules already deny the instance inbound at 50, and a subnet whose
/// ACL allows everything at rule 1 (no deny can go in front of it). A fourth ACL, which allows
/// the instance at rule 200, is full.
struct Subnets {
    _moto: MotoServer,
    /// Signs as ir-isolate-ec2's own principal: exactly its declared permissions.
    as_function: aws_config::SdkConfig,
    ec2: aws_sdk_ec2::Client,
    address: String,
    neighbour: String,
    default_acl: String,
    nat_acl: String,
    open_acl: String,
    full_acl: String,
    decision: ir_core::TriageDecision,
}

async fn acl_for(ec2: &aws_sdk_ec2::Client, vpc: &str, subnet: Option<&str>) -> String {
    let acl = ec2
        .create_network_acl()
        .vpc_id(vpc)
        .send()
        .await
        .unwrap()
        .network_acl()
        .unwrap()
        .network_acl_id()
        .unwrap()
        .to_string();
    if let Some(subnet) = subnet {
        let current = ec2
            .describe_network_acls()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("association.subnet-id")
                    .values(subnet)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let association = current.network_acls()[0]
            .associations()
            .iter()
            .find(|a| a.subnet_id() == Some(subnet))
            .and_then(|a| a.network_acl_association_id())
            .unwrap()
            .to_string();
        ec2.replace_network_acl_association()
            .association_id(association)
            .network_acl_id(&acl)
            .send()
            .await
            .unwrap();
    }
    acl
}

async fn entry(
    ec2: &aws_sdk_ec2::Client,
    acl: &str,
    n: i32,
    egress: bool,
    allow: bool,
    cidr: &str,
) {
    use aws_sdk_ec2::types::RuleAction;
    ec2.create_network_acl_entry()
        .network_acl_id(acl)
        .rule_number(n)
        .protocol("-1")
        .rule_action(if allow {
            RuleAction::Allow
        } else {
            RuleAction::Deny
        })
        .egress(egress)
        .cidr_block(cidr)
        .send()
        .await
        .unwrap();
}

async fn subnets_world() -> Subnets {
    let moto = MotoServer::start_enforcing_iam(&[]).await.expect("moto");
    let sdk = moto.sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let (vpc, subnet) = vpc_with_subnet(&ec2, "10.50").await;
    let subnet_in = |cidr: &'static str| {
        let (ec2, vpc) = (ec2.clone(), vpc.clone());
        async move {
            ec2.create_subnet()
                .vpc_id(vpc)
                .cidr_block(cidr)
                .send()
                .await
                .unwrap()
                .subnet()
                .unwrap()
                .subnet_id()
                .unwrap()
                .to_string()
        }
    };
    let nat_subnet = subnet_in("10.50.2.0/24").await;
    let open_subnet = subnet_in("10.50.3.0/24").await;
    let default_acl = ec2
        .describe_network_acls()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("association.subnet-id")
                .values(&subnet)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .network_acls()[0]
        .network_acl_id()
        .unwrap()
        .to_string();
    let (instance_id, address) = instance_in(&ec2, &subnet).await;
    let (_, neighbour) = instance_in(&ec2, &subnet).await;
    let host = format!("{address}/32");
    let nat_acl = acl_for(&ec2, &vpc, Some(&nat_subnet)).await;
    for egress in [false, true] {
        entry(&ec2, &nat_acl, 100, egress, true, "0.0.0.0/0").await;
    }
    entry(&ec2, &nat_acl, 50, false, false, &host).await;
    let open_acl = acl_for(&ec2, &vpc, Some(&open_subnet)).await;
    for egress in [false, true] {
        entry(&ec2, &open_acl, 1, egress, true, "0.0.0.0/0").await;
    }
    let full_acl = acl_for(&ec2, &vpc, None).await;
    let present = ec2
        .describe_network_acls()
        .network_acl_ids(&full_acl)
        .send()
        .await
        .unwrap()
        .network_acls()[0]
        .entries()
        .iter()
        .filter(|e| e.egress() == Some(false))
        .count() as i32;
    // An allow that matches the instance (so a deny is wanted), and the quota filled.
    entry(&ec2, &full_acl, 200, false, true, "0.0.0.0/0").await;
    for n in 1..(20 - present) {
        entry(
            &ec2,
            &full_acl,
            n * 10,
            false,
            false,
            &format!("192.0.2.{n}/32"),
        )
        .await;
    }
    let mut e = event_json("guardduty-ec2-c2-activity.json");
    e["detail"]["resource"]["instanceDetails"]["instanceId"] = instance_id.clone().into();
    let decision = live_triage(&sdk, "incidents")
        .await
        .handle(e)
        .await
        .expect("triage")
        .primary;
    pre_state_store(&sdk).await;
    Subnets {
        as_function: function_sdk(&moto, ir_isolate_ec2::FUNCTION_NAME).await,
        _moto: moto,
        ec2,
        address,
        neighbour,
        default_acl,
        nat_acl,
        open_acl,
        full_acl,
        decision,
    }
}

impl Subnets {
    /// (rule, egress, allow, cidr) of every numbered rule of `acl`, sorted.
    async fn rules(&self, acl: &str) -> Vec<(i32, bool, bool, String)> {
        let out = self
            .ec2
            .describe_network_acls()
            .network_acl_ids(acl)
            .send()
            .await
            .unwrap();
        let mut rules: Vec<_> = out.network_acls()[0]
            .entries()
            .iter()
            .filter(|e| e.rule_number().is_some_and(|n| n < 32767))
            .map(|e| {
                (
                    e.rule_number().unwrap(),
                    e.egress().unwrap(),
                    e.rule_action() == Some(&aws_sdk_ec2::types::RuleAction::Allow),
                    e.cidr_block().unwrap_or_default().to_string(),
                )
            })
            .collect();
        rules.sort();
        rules
    }

    /// The isolation function under its own declared permissions, NACL isolation on.
    async fn run(&self, mode: Mode) -> ContainmentRecord {
        let config = IsolateConfig {
            nacl_isolation: true,
            ..IsolateConfig::default()
        };
        let rec = isolator_as(&self.as_function, config)
            .handle(ContainmentRequest {
                mode,
                decision: self.decision.clone(),
                approval: None,
                previous: None,
            })
            .await
            .expect("isolator");
        assert_declared(ir_isolate_ec2::FUNCTION_NAME, &rec);
        assert_eq!(rec.status, RecordStatus::Completed, "{:#?}", rec.steps);
        rec
    }
}

fn step<'a>(rec: &'a ContainmentRecord, name: &str) -> &'a ir_core::audit::StepRecord {
    rec.steps
        .iter()
        .find(|s| s.step == name)
        .unwrap_or_else(|| panic!("no step {name}: {:#?}", rec.steps))
}

#[tokio::test]
async fn nacl_isolation_denies_the_instance_in_every_acl_of_its_vpc_and_release_removes_only_that()
{
    let w = subnets_world().await;
    let host = format!("{}/32", w.address);
    let nat_before = w.rules(&w.nat_acl).await;
    let open_before = w.rules(&w.open_acl).await;
    let full_before = w.rules(&w.full_acl).await;

    let rec = w.run(Mode::Contain).await;
    // The instance's own subnet and the NAT subnet: denied both ways, in front of the allows.
    let denied = |rules: &[(i32, bool, bool, String)], egress: bool| {
        let first_allow = rules
            .iter()
            .filter(|r| r.1 == egress && r.2)
            .map(|r| r.0)
            .min()
            .unwrap_or(i32::MAX);
        rules
            .iter()
            .any(|r| r.1 == egress && !r.2 && r.3 == host && r.0 < first_allow)
    };
    for acl in [&w.default_acl, &w.nat_acl] {
        let rules = w.rules(acl).await;
        assert!(
            denied(&rules, false) && denied(&rules, true),
            "{acl}: {rules:?} {:#?}",
            rec.steps
        );
        assert_eq!(
            step(&rec, &format!("nacl-deny-{acl}")).outcome,
            Outcome::Succeeded
        );
        assert!(
            !rules.iter().any(|r| r.3 == format!("{}/32", w.neighbour)),
            "the neighbour in the same subnet is not touched"
        );
    }
    // The NAT ACL's own inbound deny (rule 50) was already in front: only outbound was added.
    let nat_after = w.rules(&w.nat_acl).await;
    assert_eq!(nat_after.len(), nat_before.len() + 1, "{nat_after:?}");
    // An allow at rule 1 leaves no number in front of it; a full ACL takes no rule: both are
    // recorded refusals, the playbook goes on, and nothing useless is added.
    let open = step(&rec, &format!("nacl-deny-{}", w.open_acl));
    assert_eq!(open.outcome, Outcome::Skipped);
    assert!(
        open.detail
            .as_deref()
            .unwrap_or("")
            .contains("no free rule number"),
        "{open:?}"
    );
    assert_eq!(w.rules(&w.open_acl).await, open_before);
    let full = step(&rec, &format!("nacl-deny-{}", w.full_acl));
    assert_eq!(full.outcome, Outcome::Skipped);
    assert!(
        full.detail
            .as_deref()
            .unwrap_or("")
            .contains("NetworkAclEntryLimitExceeded"),
        "{full:?}"
    );
    assert_eq!(w.rules(&w.full_acl).await, full_before);
    assert_eq!(step(&rec, "tag-isolated").outcome, Outcome::Succeeded);

    let again = w.run(Mode::Contain).await;
    assert_eq!(
        step(&again, &format!("nacl-deny-{}", w.default_acl)).outcome,
        Outcome::AlreadyDone
    );
    assert_eq!(
        w.rules(&w.nat_acl).await,
        nat_after,
        "a repeat adds nothing"
    );

    let released = w.run(Mode::Release).await;
    assert_eq!(
        step(&released, &format!("nacl-remove-{}", w.default_acl)).outcome,
        Outcome::Succeeded
    );
    assert!(!w.rules(&w.default_acl).await.iter().any(|r| r.3 == host));
    assert_eq!(
        w.rules(&w.nat_acl).await,
        nat_before,
        "the deny that was there before the response stays"
    );
}
