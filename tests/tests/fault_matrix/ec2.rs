//! ir-isolate-ec2 as the matrix drives it, on three kinds of instance: a plain one; one that a
//! load balancer's target group holds, with network ACL isolation on (`IR_NACL_ISOLATION`); one
//! in an Auto Scaling group.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_autoscaling::types::LaunchTemplateSpecification;
use aws_sdk_ec2::types::{
    Filter, IamInstanceProfileSpecification, InstanceAttributeName, InstanceType,
    RequestLaunchTemplateData,
};
use aws_sdk_elasticloadbalancingv2::types::{ProtocolEnum, TargetDescription, TargetTypeEnum};
use ir_core::actions::{ContainmentError, ContainmentRecord, ContainmentRequest};
use ir_isolate_ec2::IsolateConfig;
use ir_tests::fixtures::{any_image, instance_profile, isolator_as, vpc_with_subnet};
use ir_tests::MotoServer;
use serde_json::{json, Value};

use crate::{percent_decode, Case, Subject, World};

/// What the instance under test is part of, besides its VPC and instance profile.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wiring {
    Plain,
    /// Registered in a target group; the isolation also denies it in the VPC's network ACLs.
    TargetGroupAndAcls,
    /// A member of an Auto Scaling group.
    AutoScaling,
}

pub(crate) struct Ec2 {
    pub(crate) world: World,
    pub(crate) wiring: Wiring,
}

/// Ids the matrix looks up by name.
const INSTANCE: &str = "<instance>";
const VPC: &str = "<vpc>";
const ROLE: &str = "<role>";
const TARGET_GROUP: &str = "<target-group>";
const ASG: &str = "<asg>";

impl Subject for Ec2 {
    fn name(&self) -> String {
        match self.wiring {
            Wiring::Plain => "ir-isolate-ec2".into(),
            Wiring::TargetGroupAndAcls => "ir-isolate-ec2 (target group, network ACLs)".into(),
            Wiring::AutoScaling => "ir-isolate-ec2 (Auto Scaling group)".into(),
        }
    }

    async fn fresh(&self, n: usize) -> Case {
        let sdk = &self.world.sdk;
        let ec2 = aws_sdk_ec2::Client::new(sdk);
        let (mut ids, subnet) = plain_instance(sdk, n).await;
        let id = ids[0].0.clone();
        match self.wiring {
            Wiring::Plain => {}
            Wiring::TargetGroupAndAcls => {
                let arn = target_group(sdk, &ids[1].0, n, &id).await;
                ids.push((arn, TARGET_GROUP.into()));
                ids.push((format!("matrix-web-{n:03}"), "<target-group-name>".into()));
                let acls = ec2
                    .describe_network_acls()
                    .filters(Filter::builder().name("vpc-id").values(&ids[1].0).build())
                    .send()
                    .await
                    .expect("network ACLs");
                for (i, acl) in acls.network_acls().iter().enumerate() {
                    let acl = acl.network_acl_id().expect("ACL id").to_string();
                    ids.push((acl, format!("<acl-{i}>")));
                }
            }
            Wiring::AutoScaling => {
                let asg = auto_scaling_group(sdk, &subnet, n, &id).await;
                ids.push((asg, ASG.into()));
            }
        }
        let decision = self
            .world
            .decide("guardduty-ec2-c2-activity.json", n, |e| {
                e["detail"]["resource"]["instanceDetails"]["instanceId"] = id.clone().into();
            })
            .await;
        Case::new(decision, None, ids)
    }

    async fn run(
        &self,
        sdk: &SdkConfig,
        request: ContainmentRequest,
    ) -> Result<ContainmentRecord, ContainmentError> {
        let config = IsolateConfig {
            nacl_isolation: self.wiring == Wiring::TargetGroupAndAcls,
            ..IsolateConfig::default()
        };
        isolator_as(sdk, config).handle(request).await
    }

    async fn state(&self, case: &Case) -> Value {
        let sdk = &self.world.sdk;
        let id = case.id(INSTANCE);
        let mut state = json!({
            "instance": instance_state(sdk, id).await,
            "ir_groups": ir_groups(sdk, case.id(VPC)).await,
            "role": role_state(sdk, case.id(ROLE)).await,
            "pre_state": self.world.pre_states(case, id).await,
        });
        match self.wiring {
            Wiring::Plain => {}
            Wiring::TargetGroupAndAcls => {
                state["targets"] = targets(sdk, case.id(TARGET_GROUP)).await;
                state["acl_entries"] = acl_entries(sdk, case.id(VPC)).await;
            }
            Wiring::AutoScaling => {
                state["auto_scaling"] = auto_scaling(sdk, id, case.id(ASG)).await;
            }
        }
        case.normal(state)
    }

    fn moto(&self) -> &MotoServer {
        &self.world.moto
    }

    /// Leaving the target groups (and recording them for the release); Auto Scaling's steps
    /// cannot be skipped (a failed lookup fails the observation).
    fn best_effort(&self) -> &'static [&'static str] {
        &["targets", "tg"]
    }
}

/// A running instance in a new VPC (`10.<n>`), with an `app` group and an instance profile.
/// Returns its ids (instance, VPC, subnet, group, profile ARN, role, profile, ENIs, address,
/// association) and its subnet.
async fn plain_instance(sdk: &SdkConfig, n: usize) -> (Vec<(String, String)>, String) {
    let ec2 = aws_sdk_ec2::Client::new(sdk);
    let iam = aws_sdk_iam::Client::new(sdk);
    let (vpc, subnet) = vpc_with_subnet(&ec2, &format!("10.{n}")).await;
    let app = ec2
        .create_security_group()
        .group_name("app")
        .description("app")
        .vpc_id(&vpc)
        .send()
        .await
        .expect("app group");
    let app = app.group_id().expect("group id").to_string();
    let role = format!("worker-role-{n}");
    let profile = format!("worker-profile-{n}");
    let profile_arn = instance_profile(&iam, &role, &profile).await;
    let run = ec2
        .run_instances()
        .image_id(any_image(&ec2).await)
        .instance_type(InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .subnet_id(&subnet)
        .security_group_ids(&app)
        .iam_instance_profile(
            IamInstanceProfileSpecification::builder()
                .arn(&profile_arn)
                .build(),
        )
        .send()
        .await
        .expect("instance");
    let instance = &run.instances()[0];
    let id = instance.instance_id().expect("instance id").to_string();
    let mut ids = vec![
        (id.clone(), INSTANCE.to_string()),
        (vpc, VPC.into()),
        (subnet.clone(), "<subnet>".into()),
        (app, "<app-group>".into()),
        (profile_arn, "<profile-arn>".into()),
        (role, ROLE.into()),
        (profile, "<profile>".into()),
    ];
    if let Some(ip) = instance.private_ip_address() {
        ids.push((ip.to_string(), "<ip>".into()));
    }
    for (i, eni) in instance.network_interfaces().iter().enumerate() {
        let eni = eni.network_interface_id().expect("ENI id");
        ids.push((eni.to_string(), format!("<eni-{i}>")));
    }
    let assoc = ec2
        .describe_iam_instance_profile_associations()
        .filters(Filter::builder().name("instance-id").values(&id).build())
        .send()
        .await
        .expect("associations");
    for a in assoc.iam_instance_profile_associations() {
        ids.push((
            a.association_id().unwrap_or_default().into(),
            "<assoc>".into(),
        ));
    }
    (ids, subnet)
}

/// An instance-type target group `matrix-web-<n>` in the VPC holding the instance on port 80.
async fn target_group(sdk: &SdkConfig, vpc: &str, n: usize, instance: &str) -> String {
    let elbv2 = aws_sdk_elasticloadbalancingv2::Client::new(sdk);
    let group = elbv2
        .create_target_group()
        .name(format!("matrix-web-{n:03}"))
        .protocol(ProtocolEnum::Http)
        .port(80)
        .vpc_id(vpc)
        .target_type(TargetTypeEnum::Instance)
        .send()
        .await
        .expect("target group");
    let arn = group.target_groups()[0]
        .target_group_arn()
        .expect("target group ARN")
        .to_string();
    elbv2
        .register_targets()
        .target_group_arn(&arn)
        .targets(TargetDescription::builder().id(instance).build())
        .send()
        .await
        .expect("register");
    arn
}

/// An Auto Scaling group `matrix-workers-<n>` (0–2 instances) in the subnet, which the instance
/// is attached to (desired capacity 1).
async fn auto_scaling_group(sdk: &SdkConfig, subnet: &str, n: usize, instance: &str) -> String {
    let ec2 = aws_sdk_ec2::Client::new(sdk);
    let asg = aws_sdk_autoscaling::Client::new(sdk);
    let name = format!("matrix-workers-{n:03}");
    let data = RequestLaunchTemplateData::builder()
        .image_id(any_image(&ec2).await)
        .instance_type(InstanceType::T3Micro)
        .build();
    ec2.create_launch_template()
        .launch_template_name(&name)
        .launch_template_data(data)
        .send()
        .await
        .expect("launch template");
    let template = LaunchTemplateSpecification::builder()
        .launch_template_name(&name)
        .build();
    asg.create_auto_scaling_group()
        .auto_scaling_group_name(&name)
        .launch_template(template)
        .min_size(0)
        .max_size(2)
        .desired_capacity(0)
        .vpc_zone_identifier(subnet)
        .send()
        .await
        .expect("Auto Scaling group");
    asg.attach_instances()
        .auto_scaling_group_name(&name)
        .instance_ids(instance)
        .send()
        .await
        .expect("attach");
    name
}

fn tag_map<'a>(tags: impl Iterator<Item = (&'a str, &'a str)>) -> BTreeMap<String, String> {
    tags.map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The instance's ENI groups, tags, protection attributes and profile associations.
async fn instance_state(sdk: &SdkConfig, id: &str) -> Value {
    let ec2 = aws_sdk_ec2::Client::new(sdk);
    let out = ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .expect("describe");
    let instance = &out.reservations()[0].instances()[0];
    let enis: Vec<Vec<String>> = instance
        .network_interfaces()
        .iter()
        .map(|n| {
            let mut g: Vec<String> = n
                .groups()
                .iter()
                .filter_map(|g| g.group_name().map(str::to_string))
                .collect();
            g.sort();
            g
        })
        .collect();
    let tags = tag_map(
        instance
            .tags()
            .iter()
            .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
    );
    let termination = ec2
        .describe_instance_attribute()
        .instance_id(id)
        .attribute(InstanceAttributeName::DisableApiTermination)
        .send()
        .await
        .expect("attribute");
    let shutdown = ec2
        .describe_instance_attribute()
        .instance_id(id)
        .attribute(InstanceAttributeName::InstanceInitiatedShutdownBehavior)
        .send()
        .await
        .expect("attribute");
    let assoc = ec2
        .describe_iam_instance_profile_associations()
        .filters(Filter::builder().name("instance-id").values(id).build())
        .send()
        .await
        .expect("associations");
    let profiles: Vec<String> = assoc
        .iam_instance_profile_associations()
        .iter()
        .map(|a| {
            let arn = a.iam_instance_profile().and_then(|p| p.arn());
            format!("{:?} {}", a.state(), arn.unwrap_or_default())
        })
        .collect();
    json!({
        "enis": enis, "tags": tags, "profile_associations": profiles,
        "disableApiTermination":
            format!("{:?}", termination.disable_api_termination().and_then(|v| v.value())),
        "instanceInitiatedShutdownBehavior": format!(
            "{:?}",
            shutdown.instance_initiated_shutdown_behavior().and_then(|v| v.value())
        ),
    })
}

/// The response's groups in the VPC (`ir-…`) with their rules.
async fn ir_groups(sdk: &SdkConfig, vpc: &str) -> Value {
    let ec2 = aws_sdk_ec2::Client::new(sdk);
    let groups = ec2
        .describe_security_groups()
        .filters(Filter::builder().name("vpc-id").values(vpc).build())
        .send()
        .await
        .expect("groups");
    let rules = |perms: &[aws_sdk_ec2::types::IpPermission]| -> Vec<String> {
        let mut v: Vec<String> = perms
            .iter()
            .map(|p| {
                let cidrs: Vec<_> = p.ip_ranges().iter().filter_map(|r| r.cidr_ip()).collect();
                let v6: Vec<_> = p
                    .ipv6_ranges()
                    .iter()
                    .filter_map(|r| r.cidr_ipv6())
                    .collect();
                let (proto, from, to) = (p.ip_protocol(), p.from_port(), p.to_port());
                format!("{proto:?} {from:?}-{to:?} {cidrs:?} {v6:?}")
            })
            .collect();
        v.sort();
        v
    };
    let ir_groups: BTreeMap<String, Value> = groups
        .security_groups()
        .iter()
        .filter(|g| g.group_name().is_some_and(|n| n.starts_with("ir-")))
        .map(|g| {
            let name = g.group_name().unwrap_or_default().to_string();
            let ingress = rules(g.ip_permissions());
            let egress = rules(g.ip_permissions_egress());
            (name, json!({"in": ingress, "out": egress}))
        })
        .collect();
    json!(ir_groups)
}

/// The role's tags and inline policies (documents decoded).
async fn role_state(sdk: &SdkConfig, role: &str) -> Value {
    let iam = aws_sdk_iam::Client::new(sdk);
    let tags = iam
        .list_role_tags()
        .role_name(role)
        .send()
        .await
        .expect("role tags");
    let tags = tag_map(tags.tags().iter().map(|t| (t.key(), t.value())));
    let mut policies = BTreeMap::new();
    let names = iam
        .list_role_policies()
        .role_name(role)
        .send()
        .await
        .expect("role policies");
    for name in names.policy_names() {
        let doc = iam
            .get_role_policy()
            .role_name(role)
            .policy_name(name)
            .send()
            .await
            .expect("role policy");
        policies.insert(name.clone(), percent_decode(doc.policy_document()));
    }
    json!({"tags": tags, "policies": policies})
}

/// The target group's targets: id, port and health state.
async fn targets(sdk: &SdkConfig, arn: &str) -> Value {
    let elbv2 = aws_sdk_elasticloadbalancingv2::Client::new(sdk);
    let health = elbv2
        .describe_target_health()
        .target_group_arn(arn)
        .send()
        .await
        .expect("target health");
    let mut targets: Vec<String> = health
        .target_health_descriptions()
        .iter()
        .map(|d| {
            let t = d.target();
            let state = d.target_health().and_then(|h| h.state());
            format!(
                "{} {:?} {state:?}",
                t.and_then(|t| t.id()).unwrap_or_default(),
                t.and_then(|t| t.port())
            )
        })
        .collect();
    targets.sort();
    json!(targets)
}

/// Every entry of every network ACL of the VPC (the default rules included).
async fn acl_entries(sdk: &SdkConfig, vpc: &str) -> Value {
    let ec2 = aws_sdk_ec2::Client::new(sdk);
    let acls = ec2
        .describe_network_acls()
        .filters(Filter::builder().name("vpc-id").values(vpc).build())
        .send()
        .await
        .expect("network ACLs");
    let entries: BTreeMap<String, Vec<String>> = acls
        .network_acls()
        .iter()
        .map(|acl| {
            let mut e: Vec<String> = acl
                .entries()
                .iter()
                .map(|e| {
                    format!(
                        "{:?} {:?} {:?} {:?} {:?} {:?}",
                        e.egress(),
                        e.rule_number(),
                        e.rule_action(),
                        e.protocol(),
                        e.cidr_block(),
                        e.ipv6_cidr_block()
                    )
                })
                .collect();
            e.sort();
            (acl.network_acl_id().unwrap_or_default().to_string(), e)
        })
        .collect();
    json!(entries)
}

/// The instance's Auto Scaling membership (group, scale-in protection) and the group's desired
/// capacity.
async fn auto_scaling(sdk: &SdkConfig, instance: &str, group: &str) -> Value {
    let asg = aws_sdk_autoscaling::Client::new(sdk);
    let member = asg
        .describe_auto_scaling_instances()
        .instance_ids(instance)
        .send()
        .await
        .expect("Auto Scaling instances");
    let member: Vec<String> = member
        .auto_scaling_instances()
        .iter()
        .map(|i| {
            format!(
                "{} protected={:?}",
                i.auto_scaling_group_name().unwrap_or_default(),
                i.protected_from_scale_in()
            )
        })
        .collect();
    let groups = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(group)
        .send()
        .await
        .expect("Auto Scaling group");
    let desired = groups
        .auto_scaling_groups()
        .first()
        .and_then(|g| g.desired_capacity());
    json!({"member_of": member, "desired_capacity": desired})
}
