//! Shared fixtures: the sample events, their expected triage, and the AWS resources triage
//! needs (incidents table, kill-switch parameter), created through the real SDK.

use std::collections::BTreeMap;
use std::path::PathBuf;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use serde::Deserialize;

use crate::workspace_root;

/// `events/` at the workspace root.
pub fn events_dir() -> PathBuf {
    workspace_root().join("events")
}

/// A file of the repository, by its path from the workspace root.
pub fn workspace_file(relative: &str) -> PathBuf {
    workspace_root().join(relative)
}

/// Every sample event file (`events/*.json` except `expected.json`), sorted by name.
pub fn sample_event_files() -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(events_dir())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && p.file_name().is_some_and(|n| n != "expected.json")
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Raw text of `events/<name>`.
pub fn event_text(name: &str) -> std::io::Result<String> {
    std::fs::read_to_string(events_dir().join(name))
}

/// `events/<name>` parsed as JSON (panics on a malformed sample: use for valid events only).
pub fn event_json(name: &str) -> serde_json::Value {
    let text = event_text(name).unwrap_or_else(|e| panic!("read {name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
}

/// What triage must decide for one sample event.
#[derive(Debug, Clone, Deserialize)]
pub struct Expected {
    pub disposition: Option<String>,
    pub route: Option<String>,
    pub tier: Option<String>,
    #[serde(default)]
    pub protected: bool,
    /// For events that must be rejected: the `errorType`.
    pub error: Option<String>,
}

/// `events/expected.json`, keyed by file name.
pub fn expected() -> BTreeMap<String, Expected> {
    let text = event_text("expected.json").expect("events/expected.json");
    let raw: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(&text).expect("expected.json is JSON");
    raw.into_iter()
        .filter(|(k, _)| !k.starts_with('_'))
        .map(|(k, v)| {
            let e: Expected = serde_json::from_value(v).unwrap_or_else(|e| panic!("{k}: {e}"));
            (k, e)
        })
        .collect()
}

/// Creates the incidents (dedupe) table the way Terraform does: key `incident_id` (S).
pub async fn create_incidents_table(
    ddb: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<(), aws_sdk_dynamodb::Error> {
    create_table(ddb, name, "incident_id").await
}

/// A pay-per-request table with the string hash key `key`.
pub async fn create_table(
    ddb: &aws_sdk_dynamodb::Client,
    name: &str,
    key: &str,
) -> Result<(), aws_sdk_dynamodb::Error> {
    ddb.create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(key)
                .attribute_type(ScalarAttributeType::S)
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(key)
                .key_type(KeyType::Hash)
                .build()?,
        )
        .send()
        .await?;
    Ok(())
}

/// The pre-state table name the tests and the demo use.
pub const PRE_STATE_TABLE: &str = "pre-state";

/// Creates the pre-state table the way Terraform does (key `resource`) and returns its store.
/// Creating it twice on one emulator is fine: the second call only returns the store.
pub async fn pre_state_store(sdk: &aws_config::SdkConfig) -> ir_core::prestate::PreStateStore {
    let ddb = ir_core::aws_client!(aws_sdk_dynamodb, sdk);
    if let Err(e) = create_table(&ddb, PRE_STATE_TABLE, "resource").await {
        let exists = matches!(&e, aws_sdk_dynamodb::Error::ResourceInUseException(_));
        assert!(exists, "create pre-state table: {e}");
    }
    ir_core::prestate::PreStateStore::new(ddb, PRE_STATE_TABLE)
}

/// The pre-state table (which must exist), through `sdk`'s credentials.
pub fn pre_state_of(sdk: &aws_config::SdkConfig) -> ir_core::prestate::PreStateStore {
    ir_core::prestate::PreStateStore::new(
        ir_core::aws_client!(aws_sdk_dynamodb, sdk),
        PRE_STATE_TABLE,
    )
}

/// Fails when `record` (a function's output) holds a step whose `api_call` the function does not
/// declare as a permission.
pub fn assert_declared<T: serde::Serialize>(function: &str, record: &T) {
    let value = serde_json::to_value(record).expect("record as JSON");
    let undeclared = crate::permissions::undeclared_calls(function, &value);
    assert!(
        undeclared.is_empty(),
        "{function} records calls it does not declare: {undeclared:?}"
    );
}

/// The safety inputs with the kill switch at [`KILL_SWITCH`], no forced dry-run, and the
/// default policy's protected tags.
pub fn safety(sdk: &aws_config::SdkConfig) -> ir_core::actions::Safety {
    ir_core::actions::Safety {
        kill_switch: ir_core::killswitch::KillSwitch::new(
            ir_core::aws_client!(aws_sdk_ssm, sdk),
            KILL_SWITCH,
        ),
        forced_dry_run: false,
        protected_tags: default_protected_tags(),
    }
}

/// Sets the kill-switch parameter.
pub async fn set_kill_switch(
    ssm: &aws_sdk_ssm::Client,
    name: &str,
    value: &str,
) -> Result<(), aws_sdk_ssm::Error> {
    ssm.put_parameter()
        .name(name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await?;
    Ok(())
}

/// Number of items in a table (a full scan; test tables are tiny).
pub async fn count_items(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<usize, aws_sdk_dynamodb::Error> {
    let out = ddb.scan().table_name(table).send().await?;
    Ok(out.items().len())
}

/// The kill-switch parameter name the tests and the demo use (the functions' default).
pub const KILL_SWITCH: &str = ir_core::killswitch::DEFAULT_KILL_SWITCH_PARAMETER;

/// A live triage against the emulator behind `sdk`: creates the incidents table `table`, sets
/// the kill switch `off`, and uses the repository's default policy.
pub async fn live_triage(sdk: &aws_config::SdkConfig, table: &str) -> ir_triage::Triage {
    let ddb = ir_core::aws_client!(aws_sdk_dynamodb, sdk);
    let ssm = ir_core::aws_client!(aws_sdk_ssm, sdk);
    set_kill_switch(&ssm, KILL_SWITCH, "off")
        .await
        .expect("set kill switch");
    create_incidents_table(&ddb, table)
        .await
        .expect("create incidents table");
    let config = ir_triage::TriageConfig {
        incidents_table: table.into(),
        kill_switch_parameter: KILL_SWITCH.into(),
        dry_run: false,
        state_machine_arn: None,
    };
    let policy = ir_core::LoadedPolicy::default_policy().expect("default policy");
    ir_triage::Triage::new(&config, policy, ssm, ddb)
}

/// The protected-tag rules of the repository's default policy.
pub fn default_protected_tags() -> Vec<ir_core::policy::TagMatch> {
    ir_core::LoadedPolicy::default_policy()
        .expect("default policy")
        .policy
        .protected_tags
}

/// The text of `infra/<file>` between the first `start` and the next `end` after it: how the
/// tests read a Terraform setting (a variable's default, a local) they must agree with.
pub fn terraform_between(file: &str, start: &str, end: &str) -> String {
    let text = std::fs::read_to_string(workspace_file(&format!("infra/{file}")))
        .unwrap_or_else(|e| panic!("infra/{file}: {e}"));
    text.split_once(start)
        .and_then(|(_, rest)| rest.split_once(end))
        .map(|(block, _)| block.to_string())
        .unwrap_or_else(|| panic!("`{start}` … `{end}` in infra/{file}"))
}

/// `local.lambda_timeout_seconds` from infra/main.tf: function → seconds.
pub fn lambda_timeouts() -> std::collections::BTreeMap<String, u64> {
    terraform_between("main.tf", "lambda_timeout_seconds = {", "}")
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            Some((
                k.trim().trim_matches('"').to_string(),
                v.trim().parse().ok()?,
            ))
        })
        .collect()
}

/// The trust policy of an EC2 instance role.
pub const EC2_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// Role `role` in instance profile `profile`, as an instance's credentials come from; returns the
/// profile's ARN.
pub async fn instance_profile(iam: &aws_sdk_iam::Client, role: &str, profile: &str) -> String {
    iam.create_role()
        .role_name(role)
        .assume_role_policy_document(EC2_TRUST)
        .send()
        .await
        .expect("role");
    let out = iam
        .create_instance_profile()
        .instance_profile_name(profile)
        .send()
        .await
        .expect("instance profile");
    iam.add_role_to_instance_profile()
        .instance_profile_name(profile)
        .role_name(role)
        .send()
        .await
        .expect("role in profile");
    out.instance_profile()
        .map(|p| p.arn().to_string())
        .expect("profile ARN")
}

/// A VPC `<prefix>.0.0/16` with one subnet `<prefix>.1.0/24`: (VPC id, subnet id).
pub async fn vpc_with_subnet(ec2: &aws_sdk_ec2::Client, prefix: &str) -> (String, String) {
    let vpc = ec2
        .create_vpc()
        .cidr_block(format!("{prefix}.0.0/16"))
        .send()
        .await
        .expect("VPC");
    let vpc_id = vpc
        .vpc()
        .and_then(|v| v.vpc_id())
        .expect("VPC id")
        .to_string();
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc_id)
        .cidr_block(format!("{prefix}.1.0/24"))
        .send()
        .await
        .expect("subnet");
    let subnet_id = subnet
        .subnet()
        .and_then(|s| s.subnet_id())
        .expect("subnet id")
        .to_string();
    (vpc_id, subnet_id)
}

/// An image the emulator can launch.
pub async fn any_image(ec2: &aws_sdk_ec2::Client) -> String {
    ec2.describe_images()
        .send()
        .await
        .expect("images")
        .images()
        .first()
        .and_then(|i| i.image_id())
        .expect("an image")
        .to_string()
}

/// Runs one small instance in `subnet`; returns its id and private IPv4 address.
pub async fn instance_in(ec2: &aws_sdk_ec2::Client, subnet: &str) -> (String, String) {
    let out = ec2
        .run_instances()
        .image_id(any_image(ec2).await)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .subnet_id(subnet)
        .send()
        .await
        .expect("run instance");
    let i = &out.instances()[0];
    (
        i.instance_id().expect("instance id").to_string(),
        i.private_ip_address().expect("private IP").to_string(),
    )
}

/// The names of the security groups on the ENIs of `instance_id`.
pub async fn eni_group_names(ec2: &aws_sdk_ec2::Client, instance_id: &str) -> Vec<String> {
    let out = ec2
        .describe_network_interfaces()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("attachment.instance-id")
                .values(instance_id)
                .build(),
        )
        .send()
        .await
        .expect("describe ENIs");
    out.network_interfaces()
        .iter()
        .flat_map(|n| n.groups())
        .filter_map(|g| g.group_name().map(str::to_string))
        .collect()
}

/// ir-isolate-ec2 wired to the emulator behind `sdk`, with the default policy's protected tags;
/// the pre-state table is created first.
pub async fn isolator(
    sdk: &aws_config::SdkConfig,
    config: ir_isolate_ec2::IsolateConfig,
) -> ir_isolate_ec2::Isolator {
    pre_state_store(sdk).await;
    isolator_as(sdk, config)
}

/// ir-isolate-ec2 making every call with `sdk`'s credentials (e.g. the function's own
/// principal), on an emulator whose pre-state table exists.
pub fn isolator_as(
    sdk: &aws_config::SdkConfig,
    config: ir_isolate_ec2::IsolateConfig,
) -> ir_isolate_ec2::Isolator {
    ir_isolate_ec2::Isolator {
        ec2: ir_core::aws_client!(aws_sdk_ec2, sdk),
        autoscaling: ir_core::aws_client!(aws_sdk_autoscaling, sdk),
        elbv2: ir_core::aws_client!(aws_sdk_elasticloadbalancingv2, sdk),
        iam: ir_core::aws_client!(aws_sdk_iam, sdk),
        safety: safety(sdk),
        pre_state: pre_state_of(sdk),
        config,
    }
}
