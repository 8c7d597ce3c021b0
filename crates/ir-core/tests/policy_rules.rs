//! Policy evaluation over real sample incidents with purpose-written policies.

use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use ir_core::incident::ResourceRole;
use ir_core::{Disposition, Incident, LoadedPolicy, Route, Tier};

fn incident(name: &str) -> Incident {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../events")
        .join(name);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect(name)).expect(name);
    Incident::from_event_value(v).expect(name).remove(0)
}

fn policy(toml: &str) -> LoadedPolicy {
    LoadedPolicy::from_toml(toml, "test").expect("valid policy")
}

#[test]
fn suppression_by_principal_and_cidr_respects_expiry() {
    let p = policy(
        r#"
[[suppressions]]
name = "red-team"
reason = "authorised exercise"
principals = ["user/deploy-*"]
remote_cidrs = ["192.0.2.0/24"]
expires = "2026-12-31T00:00:00Z"
"#,
    );
    let i = incident("guardduty-iam-anomalous-behavior.json");
    let before = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    let after = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
    let d = p.policy.evaluate(&i, before);
    assert_eq!(d.disposition, Disposition::Suppressed);
    assert_eq!(d.suppressed_by.as_deref(), Some("red-team"));
    assert_eq!(
        p.policy.evaluate(&i, after).disposition,
        Disposition::Respond
    );

    // Same principal from an IP outside the CIDR is not suppressed: all criteria must match.
    let mut elsewhere = i.clone();
    if let Some(r) = elsewhere.remote.as_mut() {
        r.ip = Some("203.0.113.9".parse().unwrap());
    }
    assert_eq!(
        p.policy.evaluate(&elsewhere, before).disposition,
        Disposition::Respond
    );
}

#[test]
fn a_target_is_capped_even_when_a_rule_says_auto() {
    let p = policy(
        r#"
[[rules]]
name = "everything-auto"
tier = "auto"
"#,
    );
    let mut i = incident("guardduty-ec2-c2-activity.json");
    assert_eq!(p.policy.evaluate(&i, Utc::now()).tier, Tier::Auto);
    i.resource_role = Some(ResourceRole::Target);
    let d = p.policy.evaluate(&i, Utc::now());
    assert_eq!(d.tier, Tier::Approval);
    assert!(d.reasons.iter().any(|r| r.contains("target")));
}

#[test]
fn safety_caps_cannot_be_loosened_by_rules() {
    let p = policy(
        r#"
[[rules]]
name = "everything-auto"
tier = "auto"
"#,
    );
    for name in [
        "guardduty-iam-root-credential-usage.json",
        "guardduty-eks-privileged-container.json",
    ] {
        let d = p.policy.evaluate(&incident(name), Utc::now());
        assert_eq!(d.tier, Tier::Manual, "{name}: {:?}", d.reasons);
    }
    // Protected: escalated to an analyst, never more than approval.
    let d = p.policy.evaluate(
        &incident("guardduty-ec2-protected-cryptomining.json"),
        Utc::now(),
    );
    assert_eq!(d.tier, Tier::Approval, "{:?}", d.reasons);
    assert!(d.protected);
    let mut slr = incident("guardduty-iam-instance-credential-exfiltration.json");
    if let Some(ir_core::incident::Resource::IamRole { role_name, .. }) = slr.resources.first_mut()
    {
        *role_name = "AWSServiceRoleForECS".into();
    }
    assert_eq!(p.policy.evaluate(&slr, Utc::now()).tier, Tier::Manual);
}

#[test]
fn custom_protected_tag_without_value_matches_any_value() {
    let p = policy(
        r#"
[[protected_tags]]
key = "env"

[[rules]]
name = "everything-auto"
tier = "auto"
"#,
    );
    let d = p
        .policy
        .evaluate(&incident("guardduty-ec2-tor-client.json"), Utc::now());
    assert!(d.protected);
    assert_eq!(d.tier, Tier::Approval);
}

#[test]
fn custom_action_tier_and_threshold() {
    let p = LoadedPolicy::default_policy().unwrap();
    let i = incident("securityhub-custom-action-contain-ec2.json");
    assert!(i.severity.score < p.policy.defaults.min_severity);
    let d = p.policy.evaluate(&i, Utc::now());
    assert_eq!((d.route, d.tier), (Route::Ec2, Tier::Auto));

    // Without the custom action the same medium finding is below the threshold → manual.
    let mut plain = i.clone();
    plain.custom_action = None;
    let d = p.policy.evaluate(&plain, Utc::now());
    assert_eq!(d.tier, Tier::Manual);
    assert!(d
        .reasons
        .iter()
        .any(|r| r.contains("below the response threshold")));
}

#[test]
fn archived_findings_are_suppressed() {
    let p = LoadedPolicy::default_policy().unwrap();
    let mut i = incident("guardduty-ec2-c2-activity.json");
    i.archived = true;
    let d = p.policy.evaluate(&i, Utc::now());
    assert_eq!(d.disposition, Disposition::Suppressed);
    assert_eq!(d.suppressed_by.as_deref(), Some("archived"));
}

#[test]
fn protected_resources_escalate_and_never_touch_is_never_changed() {
    let mut p = policy(
        r#"
protected_resources = ["arn:aws:ec2:*:*:instance/i-0a1b2c3d4e5f6a7b8", "role/prod-*"]

[[rules]]
name = "everything-auto"
tier = "auto"
"#,
    );
    // By ARN: escalated to an analyst, like a protected tag, but no one on the resource can
    // remove it.
    let mut i = incident("guardduty-ec2-c2-activity.json");
    if let Some(ir_core::incident::Resource::Ec2Instance { instance_id, .. }) =
        i.resources.first_mut()
    {
        *instance_id = "i-0a1b2c3d4e5f6a7b8".into();
    }
    let d = p.policy.evaluate(&i, Utc::now());
    assert_eq!(d.tier, Tier::Approval, "{:?}", d.reasons);
    assert!(d.protected);
    assert!(d.reasons.iter().any(|r| r.contains("protected_resources")));
    // Another instance: untouched by the pattern.
    let other = p
        .policy
        .evaluate(&incident("guardduty-ec2-c2-activity.json"), Utc::now());
    assert_eq!(other.tier, Tier::Auto);
    assert!(!other.protected);

    // The IR roles (IR_NEVER_TOUCH, from Terraform) and break-glass roles: never changed; a
    // pattern with an IAM path matches too (findings name roles without their path).
    p.add_never_touch("arn:aws:iam::*:role/some/path/etl-runner-*, arn:aws:iam::*:role/BreakGlass");
    let role = incident("guardduty-iam-instance-credential-exfiltration.json");
    let d = p.policy.evaluate(&role, Utc::now());
    assert_eq!(d.tier, Tier::Manual, "{:?}", d.reasons);
    assert!(d.reasons.iter().any(|r| r.contains("never_touch")));
}

#[test]
fn only_trusted_products_reach_containment_and_only_aws_detectors_at_auto() {
    let mut p = policy(
        r#"
[[rules]]
name = "everything-auto"
tier = "auto"
"#,
    );
    // Imported through Security Hub by GuardDuty: trusted.
    let gd = incident("securityhub-imported-guardduty-credential-exfiltration.json");
    assert_eq!(p.policy.evaluate(&gd, Utc::now()).tier, Tier::Auto);
    // Forged: anyone allowed BatchImportFindings imports a finding of their own product with
    // GuardDuty's type on the same resource. Notify only, never a mutating step.
    let mut forged = gd.clone();
    forged.product_arn =
        Some("arn:aws:securityhub:us-east-1:111122223333:product/111122223333/default".into());
    let d = p.policy.evaluate(&forged, Utc::now());
    assert_eq!(d.tier, Tier::Manual, "{:?}", d.reasons);
    assert!(d.reasons.iter().any(|r| r.contains("trusted_products")));
    // Security Hub's own controls (CSPM) are not trusted by default.
    let cspm = incident("securityhub-imported-s3-public-access-control.json");
    assert_eq!(p.policy.evaluate(&cspm, Utc::now()).tier, Tier::Manual);
    // Opted in (IR_TRUSTED_PRODUCTS from Terraform): an AWS product may be auto, a third-party
    // one at most approval.
    p.add_trusted_products("aws/securityhub, acme/edr");
    assert_eq!(p.policy.evaluate(&cspm, Utc::now()).tier, Tier::Auto);
    let mut third_party = gd.clone();
    third_party.product_arn = Some("arn:aws:securityhub:us-east-1::product/acme/edr".into());
    let d = p.policy.evaluate(&third_party, Utc::now());
    assert_eq!(d.tier, Tier::Approval, "{:?}", d.reasons);
}

#[test]
fn member_accounts_can_be_held_to_notify_only_or_dry_run() {
    let p = policy(
        r#"
[accounts]
notify_only = ["111122223333"]
dry_run = ["4444*"]

[[rules]]
name = "c2"
tier = "auto"
finding_types = ["Backdoor:EC2/C&CActivity*"]
"#,
    );
    let mut i = incident("guardduty-ec2-c2-activity.json");
    assert_eq!(i.account_id, "111122223333");
    let d = p.policy.evaluate(&i, Utc::now());
    assert_eq!(
        (d.tier, d.dry_run),
        (Tier::Manual, false),
        "{:?}",
        d.reasons
    );
    assert!(d.reasons.iter().any(|r| r.contains("notify-only")));
    i.account_id = "444455556666".into();
    let d = p.policy.evaluate(&i, Utc::now());
    assert_eq!((d.tier, d.dry_run), (Tier::Auto, true), "{:?}", d.reasons);
    i.account_id = "777788889999".into();
    let d = p.policy.evaluate(&i, Utc::now());
    assert_eq!((d.tier, d.dry_run), (Tier::Auto, false));
    assert!(LoadedPolicy::from_toml("[accounts]\nnotify = [\"1\"]", "t").is_err());
}

#[test]
fn organizational_units_hold_back_rules_suppress_and_fail_safe_when_unknown() {
    use ir_core::orgunits::OrgPath;
    let p = policy(
        r#"
[accounts]
dry_run_organizational_units = ["ou-ab12-new*"]

[[suppressions]]
name = "pentest-ou"
reason = "the red team's sandbox accounts"
organizational_units = ["ou-ab12-redteam1"]

[[rules]]
name = "production-waits-for-a-human"
tier = "approval"
organizational_units = ["ou-ab12-prod0001"]

[[rules]]
name = "c2"
tier = "auto"
finding_types = ["Backdoor:EC2/C&CActivity*"]
"#,
    );
    assert!(p.policy.uses_organizational_units());
    let i = incident("guardduty-ec2-c2-activity.json");
    let at = |ous: &[&str]| {
        OrgPath::Known(
            std::iter::once("r-ab12")
                .chain(ous.iter().copied())
                .map(String::from)
                .collect(),
        )
    };
    let now = Utc::now();
    // A nested OU of production: the production rule, not the broader auto rule.
    let d = p
        .policy
        .evaluate_in(&i, &at(&["ou-ab12-prod0001", "ou-ab12-payments"]), now);
    assert_eq!(
        (d.tier, d.matched_rule.as_deref()),
        (Tier::Approval, Some("production-waits-for-a-human"))
    );
    let d = p.policy.evaluate_in(&i, &at(&["ou-ab12-sandbox1"]), now);
    assert_eq!((d.tier, d.dry_run), (Tier::Auto, false), "{:?}", d.reasons);
    let d = p.policy.evaluate_in(&i, &at(&["ou-ab12-newaccts"]), now);
    assert_eq!((d.tier, d.dry_run), (Tier::Auto, true), "{:?}", d.reasons);
    assert!(d.reasons.iter().any(|r| r.contains("ou-ab12-new*")));
    let d = p.policy.evaluate_in(&i, &at(&["ou-ab12-redteam1"]), now);
    assert_eq!(d.suppressed_by.as_deref(), Some("pentest-ou"));
    // Unknown: the production rule cannot be checked, so nothing is automatic.
    {
        let unknown = OrgPath::Unknown("AccessDeniedException".into());
        let d = p.policy.evaluate_in(&i, &unknown, now);
        assert_eq!(
            (d.disposition, d.tier),
            (Disposition::Respond, Tier::Manual)
        );
        assert!(
            d.reasons
                .iter()
                .any(|r| r.contains("AccessDeniedException")),
            "{:?}",
            d.reasons
        );
    }
    assert_eq!(p.policy.evaluate(&i, now).tier, Tier::Manual);
    // A policy without organizational units is not held back by an unknown place.
    let plain = policy("[[rules]]\nname = \"c2\"\ntier = \"auto\"\n");
    assert!(!plain.policy.uses_organizational_units());
    assert_eq!(plain.policy.evaluate(&i, now).tier, Tier::Auto);
    // OU names (not ids) and account ids are refused where an OU id belongs.
    for bad in ["Production", "111122223333"] {
        let text = format!(
            "[[rules]]\nname = \"x\"\ntier = \"auto\"\norganizational_units = [\"{bad}\"]\n"
        );
        let err = LoadedPolicy::from_toml(&text, "t").expect_err(bad);
        assert!(
            err.to_string().contains("not an organizational unit id"),
            "{err}"
        );
    }
}
