//! The parser over the sample events in `events/`: normalised fields, stable ids, typed errors.

use std::path::PathBuf;

use ir_core::incident::{FindingSource, PrincipalKind, Resource, ResourceRole, SeverityLabel};
use ir_core::{FindingError, Incident};

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

fn load(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(events_dir().join(name)).expect(name);
    serde_json::from_str(&text).expect(name)
}

fn one(name: &str) -> Incident {
    let mut v = Incident::from_event_value(load(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(v.len(), 1, "{name}");
    v.remove(0)
}

#[test]
fn guardduty_instance_finding_keeps_every_eni_and_security_group() {
    let i = one("guardduty-ec2-bitcointool-dns.json");
    assert_eq!(i.source, FindingSource::GuardDuty);
    assert_eq!(i.finding_type, "CryptoCurrency:EC2/BitcoinTool.B!DNS");
    assert_eq!(i.severity.label, SeverityLabel::High);
    assert_eq!(i.account_id, "111122223333");
    assert_eq!(i.region, "us-east-1");
    assert_eq!(i.resource_role, Some(ResourceRole::Actor));
    assert_eq!(i.occurrences, 3);
    assert_eq!(
        i.remote.as_ref().and_then(|r| r.domain.as_deref()),
        Some("pool.minexmr.example")
    );
    match i.primary_resource() {
        Some(Resource::Ec2Instance {
            instance_id,
            vpc_id,
            network_interfaces,
            instance_profile_arn,
            tags,
        }) => {
            assert_eq!(instance_id, "i-0a1b2c3d4e5f60001");
            assert_eq!(vpc_id.as_deref(), Some("vpc-0a9b8c7d6e5f40312"));
            assert_eq!(network_interfaces.len(), 2);
            assert_eq!(
                network_interfaces[1].security_group_ids,
                vec!["sg-0123456789abcdef0", "sg-0fedcba9876543210"]
            );
            assert_eq!(
                network_interfaces[0].public_ip.as_deref(),
                Some("54.210.33.101")
            );
            assert!(instance_profile_arn
                .as_deref()
                .is_some_and(|a| a.ends_with("instance-profile/web-app-profile")));
            assert_eq!(tags.get("env").map(String::as_str), Some("prod"));
        }
        other => panic!("expected an instance, got {other:?}"),
    }
}

#[test]
fn credential_exfiltration_targets_the_role_and_keeps_the_instance() {
    let i = one("guardduty-iam-instance-credential-exfiltration.json");
    let p = i.principal.as_ref().expect("principal");
    assert_eq!(p.kind, PrincipalKind::AssumedRole);
    assert_eq!(p.access_key_id.as_deref(), Some("ASIAQEXAMPLEEXFIL04"));
    assert_eq!(
        i.remote
            .as_ref()
            .and_then(|r| r.ip)
            .map(|ip| ip.to_string())
            .as_deref(),
        Some("192.0.2.199")
    );
    match &i.resources[..] {
        [Resource::IamRole {
            role_name,
            session_name,
            ..
        }, Resource::Ec2Instance { instance_id, .. }] => {
            assert_eq!(role_name, "etl-runner-role");
            assert_eq!(session_name.as_deref(), Some("i-0d4e5f6a7b8c90004"));
            assert_eq!(instance_id, "i-0d4e5f6a7b8c90004");
        }
        other => panic!("unexpected resources {other:?}"),
    }
}

#[test]
fn asff_copy_of_a_guardduty_finding_normalises_to_the_same_incident() {
    let gd = one("guardduty-iam-instance-credential-exfiltration.json");
    let sh = one("securityhub-imported-guardduty-credential-exfiltration.json");
    assert_eq!(sh.source, FindingSource::SecurityHub);
    assert_eq!(gd.incident_id, sh.incident_id);
    assert_eq!(gd.finding_key, sh.finding_key);
    assert_eq!(gd.finding_type, sh.finding_type);
    assert_eq!(gd.finding_id, sh.finding_id);
    assert_eq!(sh.severity.label, SeverityLabel::High);
    assert_eq!(sh.resource_role, Some(ResourceRole::Actor));
    assert!(
        matches!(sh.primary_resource(), Some(Resource::IamRole { role_name, .. }) if role_name == "etl-runner-role")
    );
}

#[test]
fn custom_action_carries_the_action_and_the_instance() {
    let i = one("securityhub-custom-action-contain-ec2.json");
    assert_eq!(i.source, FindingSource::SecurityHubCustomAction);
    let action = i.custom_action.as_ref().expect("custom action");
    assert_eq!(action.name, "IR-Contain");
    assert!(action
        .arn
        .as_deref()
        .is_some_and(|a| a.ends_with("action/custom/IRContain")));
    assert_eq!(i.finding_type, "Trojan:EC2/DNSDataExfiltration");
    assert!(
        matches!(i.primary_resource(), Some(Resource::Ec2Instance { instance_id, network_interfaces, .. })
        if instance_id == "i-0f6a7b8c9d0e10014" && network_interfaces.len() == 1)
    );
}

#[test]
fn security_hub_control_finding_is_an_opaque_type_on_a_bucket() {
    let i = one("securityhub-imported-s3-public-access-control.json");
    assert!(i.parsed_type.is_none());
    assert_eq!(i.product, "Security Hub");
    assert!(
        matches!(i.primary_resource(), Some(Resource::S3Bucket { bucket_name, .. }) if bucket_name == "acme-marketing-assets")
    );
}

#[test]
fn root_and_s3_findings() {
    let root = one("guardduty-iam-root-credential-usage.json");
    assert!(matches!(
        root.primary_resource(),
        Some(Resource::RootUser { .. })
    ));
    let s3 = one("guardduty-s3-block-public-access-disabled.json");
    assert!(
        matches!(&s3.resources[..], [Resource::S3Bucket { bucket_name, publicly_accessible: Some(true), .. }, Resource::IamUser { user_name, .. }]
        if bucket_name == "acme-customer-exports" && user_name == "deploy-bot")
    );
    let eks = one("guardduty-eks-privileged-container.json");
    assert!(
        matches!(eks.primary_resource(), Some(Resource::Other { resource_type, .. }) if resource_type == "EKSCluster")
    );
}

#[test]
fn malformed_events_are_typed_errors() {
    type Check = fn(&FindingError) -> bool;
    let cases: [(&str, Check); 5] = [
        ("malformed-truncated.json", |e| {
            matches!(e, FindingError::InvalidJson(_))
        }),
        (
            "malformed-unsupported-source.json",
            |e| matches!(e, FindingError::Unsupported { event_source, .. } if event_source == "aws.ec2"),
        ),
        ("malformed-guardduty-wrong-types.json", |e| {
            matches!(
                e,
                FindingError::Malformed {
                    kind: "GuardDuty",
                    ..
                }
            )
        }),
        (
            "malformed-guardduty-missing-resource.json",
            |e| matches!(e, FindingError::MissingField { field, .. } if field.contains("instanceDetails")),
        ),
        ("malformed-securityhub-no-findings.json", |e| {
            matches!(e, FindingError::NoFindings)
        }),
    ];
    for (name, check) in cases {
        let text = std::fs::read_to_string(events_dir().join(name)).expect(name);
        let err = match ir_core::finding::ParsedEvent::from_json_str(&text) {
            Err(e) => e,
            Ok((env, parsed)) => Incident::from_event(&env, parsed).expect_err(name),
        };
        assert!(check(&err), "{name}: unexpected error {err:?}");
        assert!(
            ["InvalidEvent", "UnsupportedEvent", "MalformedFinding"].contains(&err.error_type()),
            "{name}: {}",
            err.error_type()
        );
    }
}

#[test]
fn hostile_shapes_never_panic() {
    let inputs = [
        serde_json::json!(null),
        serde_json::json!([]),
        serde_json::json!(42),
        serde_json::json!("{\"detail-type\":"),
        serde_json::json!("\"nested\""),
        serde_json::json!({}),
        serde_json::json!({"source": "aws.guardduty", "detail-type": "GuardDuty Finding"}),
        serde_json::json!({"source": "aws.guardduty", "detail-type": "GuardDuty Finding", "detail": null}),
        serde_json::json!({"source": "aws.guardduty", "detail-type": "GuardDuty Finding", "detail": {
            "accountId": "1", "region": "r", "id": "x", "type": "A:B/C", "severity": 99,
            "resource": {"resourceType": "Instance", "instanceDetails": {"instanceId": "i-1"}}}}),
        serde_json::json!({"source": "aws.guardduty", "detail-type": "GuardDuty Finding", "detail": {
            "accountId": "1", "region": "r", "id": "", "type": "A:B/C", "severity": 8,
            "resource": {"resourceType": "Instance", "instanceDetails": {"instanceId": "i-1"}}}}),
        serde_json::json!({"source": "aws.securityhub", "detail-type": "Security Hub Findings - Imported",
            "detail": {"findings": [{"Id": "x", "ProductArn": "p", "AwsAccountId": "1", "Severity": {"Label": "HIGH"}, "Resources": []}]}}),
        serde_json::json!({"source": "aws.securityhub", "detail-type": "Security Hub Findings - Imported",
            "detail": {"findings": [{"Id": "x", "ProductArn": "p", "AwsAccountId": "1", "Severity": {"Normalized": 700},
            "Resources": [{"Type": "AwsS3Bucket", "Id": "arn:aws:s3:::b"}]}]}}),
    ];
    for input in inputs {
        let shown = input.to_string();
        assert!(
            Incident::from_event_value(input).is_err(),
            "accepted {shown}"
        );
    }
}

#[test]
fn a_guardduty_finding_names_the_security_hub_copy_its_integration_imports() {
    // The Security Hub workflow update addresses the finding by (Id, ProductArn); the GuardDuty
    // event must derive exactly what the imported ASFF copy carries.
    let gd = one("guardduty-iam-instance-credential-exfiltration.json");
    let sh = one("securityhub-imported-guardduty-credential-exfiltration.json");
    assert_eq!(gd.finding_key, sh.finding_key);
    assert_eq!(gd.product_arn, sh.product_arn);
    assert_eq!(
        gd.product_arn.as_deref(),
        Some("arn:aws:securityhub:us-east-1::product/aws/guardduty")
    );
    let config = one("securityhub-imported-s3-public-access-control.json");
    assert!(config
        .product_arn
        .as_deref()
        .is_some_and(|a| a.ends_with("product/aws/securityhub")));
}
