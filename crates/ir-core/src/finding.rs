//! Wire types for the events that start a response, and the parser that turns one event into
//! [`Incident`](crate::incident::Incident)s.
//!
//! Three EventBridge events are understood:
//! - `aws.guardduty` / `GuardDuty Finding`: one GuardDuty finding, camelCase `detail`;
//! - `aws.securityhub` / `Security Hub Findings - Imported`: `detail.findings[]` in ASFF (PascalCase);
//! - `aws.securityhub` / `Security Hub Findings - Custom Action`: the same plus the action an analyst chose.
//!
//! `aws_lambda_events` has no types for these, so they are written here. Only the fields the
//! response uses are modelled; everything else is ignored, so new fields AWS adds never break
//! parsing. Fields that are present but of the wrong type are a [`FindingError::Malformed`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::FindingError;

/// `detail-type` of a GuardDuty finding event.
pub const GUARDDUTY_DETAIL_TYPE: &str = "GuardDuty Finding";
/// `detail-type` of findings imported into Security Hub.
pub const SECURITYHUB_IMPORTED: &str = "Security Hub Findings - Imported";
/// `detail-type` of findings an analyst sent to a Security Hub custom action.
pub const SECURITYHUB_CUSTOM_ACTION: &str = "Security Hub Findings - Custom Action";

/// The EventBridge envelope. `detail` stays raw until `source`/`detail-type` say what it is.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct EventEnvelope {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: String,
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default, deserialize_with = "crate::timestamps::optional")]
    pub time: Option<DateTime<Utc>>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub resources: Vec<String>,
    pub detail: serde_json::Value,
}

/// A parsed event: which kind it was and the findings it carries.
#[derive(Debug, Clone)]
pub enum ParsedEvent {
    GuardDuty(Box<GuardDutyFinding>),
    SecurityHubImported(Vec<AsffFinding>),
    SecurityHubCustomAction {
        action_name: String,
        action_arn: Option<String>,
        findings: Vec<AsffFinding>,
    },
}

impl ParsedEvent {
    /// Parses an EventBridge event given as JSON text.
    pub fn from_json_str(text: &str) -> Result<(EventEnvelope, ParsedEvent), FindingError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| FindingError::InvalidJson(e.to_string()))?;
        Self::from_value(value)
    }

    /// Parses an EventBridge event already decoded to JSON (what a Lambda handler receives).
    pub fn from_value(
        value: serde_json::Value,
    ) -> Result<(EventEnvelope, ParsedEvent), FindingError> {
        // A double-encoded event (a JSON string holding the event, as SQS or SNS deliver it)
        // is decoded once.
        if let serde_json::Value::String(text) = &value {
            let inner: serde_json::Value =
                serde_json::from_str(text).map_err(|e| FindingError::InvalidJson(e.to_string()))?;
            if inner.is_string() {
                return Err(FindingError::NotAnEvent(
                    "event is encoded twice over".into(),
                ));
            }
            return Self::from_value(inner);
        }
        if !value.is_object() {
            return Err(FindingError::NotAnEvent(format!(
                "expected a JSON object, got {}",
                json_kind(&value)
            )));
        }
        let envelope: EventEnvelope =
            serde_json::from_value(value).map_err(|e| FindingError::NotAnEvent(e.to_string()))?;
        let parsed = match (envelope.source.as_str(), envelope.detail_type.as_str()) {
            ("aws.guardduty", GUARDDUTY_DETAIL_TYPE) => {
                let finding: GuardDutyFinding = decode("GuardDuty", &envelope.detail)?;
                ParsedEvent::GuardDuty(Box::new(finding))
            }
            ("aws.securityhub", SECURITYHUB_IMPORTED) => {
                let detail: AsffDetail = decode("Security Hub", &envelope.detail)?;
                if detail.findings.is_empty() {
                    return Err(FindingError::NoFindings);
                }
                ParsedEvent::SecurityHubImported(detail.findings)
            }
            ("aws.securityhub", SECURITYHUB_CUSTOM_ACTION) => {
                let detail: CustomActionDetail =
                    decode("Security Hub custom action", &envelope.detail)?;
                if detail.findings.is_empty() {
                    return Err(FindingError::NoFindings);
                }
                // The custom action's ARN is the event's only resource.
                let action_arn = envelope
                    .resources
                    .iter()
                    .find(|r| r.contains(":action/custom/"))
                    .cloned();
                ParsedEvent::SecurityHubCustomAction {
                    action_name: detail.action_name,
                    action_arn,
                    findings: detail.findings,
                }
            }
            (source, detail_type) => {
                return Err(FindingError::Unsupported {
                    event_source: source.to_string(),
                    detail_type: detail_type.to_string(),
                })
            }
        };
        Ok((envelope, parsed))
    }
}

fn decode<T: DeserializeOwned>(
    kind: &'static str,
    detail: &serde_json::Value,
) -> Result<T, FindingError> {
    serde_json::from_value(detail.clone()).map_err(|e| FindingError::Malformed {
        kind,
        message: e.to_string(),
    })
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

// ---------------------------------------------------------------------------------------------
// GuardDuty (camelCase)
// ---------------------------------------------------------------------------------------------

/// A GuardDuty finding as EventBridge delivers it in `detail`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GuardDutyFinding {
    #[serde(default)]
    pub schema_version: Option<String>,
    pub account_id: String,
    pub region: String,
    #[serde(default)]
    pub partition: Option<String>,
    pub id: String,
    #[serde(default)]
    pub arn: Option<String>,
    #[serde(rename = "type")]
    pub finding_type: String,
    pub resource: GdResource,
    #[serde(default)]
    pub service: Option<GdService>,
    pub severity: f64,
    #[serde(default, deserialize_with = "crate::timestamps::optional")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "crate::timestamps::optional")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GdResource {
    pub resource_type: String,
    #[serde(default)]
    pub instance_details: Option<GdInstanceDetails>,
    #[serde(default)]
    pub access_key_details: Option<GdAccessKeyDetails>,
    #[serde(default)]
    pub s3_bucket_details: Option<Vec<GdS3BucketDetail>>,
    /// Details of resource types without a playbook (`eksClusterDetails`, `rdsDbInstanceDetails`,
    /// `lambdaDetails`, …), kept raw to name the resource.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl GdResource {
    /// The name (or ARN) of a resource of a type without a playbook, from its `*Details` object.
    pub fn other_resource_name(&self) -> Option<String> {
        const KEYS: [&str; 6] = [
            "name",
            "dbInstanceIdentifier",
            "functionName",
            "clusterName",
            "arn",
            "id",
        ];
        self.other
            .iter()
            .filter(|(k, _)| k.ends_with("Details"))
            .filter_map(|(_, v)| v.as_object())
            .find_map(|o| {
                KEYS.iter()
                    .find_map(|k| o.get(*k).and_then(|v| v.as_str()).map(str::to_string))
            })
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GdInstanceDetails {
    #[serde(default)]
    pub instance_id: Option<String>,
    #[serde(default)]
    pub instance_state: Option<String>,
    #[serde(default)]
    pub iam_instance_profile: Option<GdInstanceProfile>,
    #[serde(default)]
    pub network_interfaces: Vec<GdNetworkInterface>,
    #[serde(default)]
    pub tags: Vec<GdTag>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GdInstanceProfile {
    #[serde(default)]
    pub arn: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GdNetworkInterface {
    #[serde(default)]
    pub network_interface_id: Option<String>,
    #[serde(default)]
    pub vpc_id: Option<String>,
    #[serde(default)]
    pub subnet_id: Option<String>,
    #[serde(default)]
    pub private_ip_address: Option<String>,
    #[serde(default)]
    pub public_ip: Option<String>,
    #[serde(default)]
    pub security_groups: Vec<GdSecurityGroup>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GdSecurityGroup {
    pub group_id: String,
    #[serde(default)]
    pub group_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct GdTag {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GdAccessKeyDetails {
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub principal_id: Option<String>,
    #[serde(default)]
    pub user_name: Option<String>,
    #[serde(default)]
    pub user_type: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GdS3BucketDetail {
    #[serde(default)]
    pub arn: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, rename = "type")]
    pub bucket_type: Option<String>,
    #[serde(default)]
    pub tags: Vec<GdTag>,
    #[serde(default)]
    pub public_access: Option<GdPublicAccess>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GdPublicAccess {
    #[serde(default)]
    pub effective_permission: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GdService {
    #[serde(default)]
    pub action: Option<GdAction>,
    #[serde(default)]
    pub resource_role: Option<String>,
    #[serde(default, deserialize_with = "crate::timestamps::optional")]
    pub event_first_seen: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "crate::timestamps::optional")]
    pub event_last_seen: Option<DateTime<Utc>>,
    #[serde(default)]
    pub archived: Option<bool>,
    #[serde(default)]
    pub count: Option<u64>,
    #[serde(default)]
    pub detector_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GdAction {
    #[serde(default)]
    pub action_type: Option<String>,
    #[serde(default)]
    pub network_connection_action: Option<GdNetworkConnectionAction>,
    #[serde(default)]
    pub aws_api_call_action: Option<GdAwsApiCallAction>,
    #[serde(default)]
    pub dns_request_action: Option<GdDnsRequestAction>,
    #[serde(default)]
    pub port_probe_action: Option<GdPortProbeAction>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GdNetworkConnectionAction {
    #[serde(default)]
    pub connection_direction: Option<String>,
    #[serde(default)]
    pub remote_ip_details: Option<GdRemoteIpDetails>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GdAwsApiCallAction {
    #[serde(default)]
    pub api: Option<String>,
    #[serde(default)]
    pub service_name: Option<String>,
    #[serde(default)]
    pub caller_type: Option<String>,
    #[serde(default)]
    pub remote_ip_details: Option<GdRemoteIpDetails>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GdDnsRequestAction {
    #[serde(default)]
    pub domain: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GdPortProbeAction {
    #[serde(default)]
    pub port_probe_details: Vec<GdPortProbeDetail>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GdPortProbeDetail {
    #[serde(default)]
    pub remote_ip_details: Option<GdRemoteIpDetails>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GdRemoteIpDetails {
    #[serde(default)]
    pub ip_address_v4: Option<String>,
    #[serde(default)]
    pub country: Option<GdCountry>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GdCountry {
    #[serde(default)]
    pub country_name: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Security Hub ASFF (PascalCase)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AsffDetail {
    #[serde(rename = "findings")]
    pub findings: Vec<AsffFinding>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomActionDetail {
    pub action_name: String,
    #[serde(default)]
    pub action_description: Option<String>,
    pub findings: Vec<AsffFinding>,
}

/// One finding in the AWS Security Finding Format.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffFinding {
    #[serde(default)]
    pub schema_version: Option<String>,
    pub id: String,
    pub product_arn: String,
    #[serde(default)]
    pub generator_id: Option<String>,
    pub aws_account_id: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub types: Vec<String>,
    #[serde(default, deserialize_with = "crate::timestamps::optional")]
    pub first_observed_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "crate::timestamps::optional")]
    pub last_observed_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "crate::timestamps::optional")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "crate::timestamps::optional")]
    pub updated_at: Option<DateTime<Utc>>,
    pub severity: AsffSeverity,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub product_name: Option<String>,
    #[serde(default)]
    pub company_name: Option<String>,
    #[serde(default)]
    pub product_fields: BTreeMap<String, String>,
    #[serde(default)]
    pub resources: Vec<AsffResource>,
    #[serde(default)]
    pub network: Option<AsffNetwork>,
    #[serde(default)]
    pub action: Option<AsffAction>,
    #[serde(default)]
    pub record_state: Option<String>,
    #[serde(default)]
    pub workflow: Option<AsffWorkflow>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffSeverity {
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub normalized: Option<f64>,
    #[serde(default)]
    pub product: Option<f64>,
    #[serde(default)]
    pub original: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffResource {
    #[serde(rename = "Type")]
    pub resource_type: String,
    pub id: String,
    #[serde(default)]
    pub partition: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub details: Option<AsffResourceDetails>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffResourceDetails {
    #[serde(default)]
    pub aws_ec2_instance: Option<AsffEc2Instance>,
    #[serde(default)]
    pub aws_iam_access_key: Option<AsffIamAccessKey>,
    #[serde(default)]
    pub aws_iam_user: Option<AsffIamUser>,
    #[serde(default)]
    pub aws_iam_role: Option<AsffIamRole>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffEc2Instance {
    #[serde(default)]
    pub vpc_id: Option<String>,
    #[serde(default)]
    pub subnet_id: Option<String>,
    #[serde(default)]
    pub iam_instance_profile_arn: Option<String>,
    #[serde(default)]
    pub network_interfaces: Vec<AsffNetworkInterface>,
    #[serde(default)]
    pub ip_v4_addresses: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffNetworkInterface {
    pub network_interface_id: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffIamAccessKey {
    #[serde(default)]
    pub principal_name: Option<String>,
    #[serde(default)]
    pub principal_type: Option<String>,
    #[serde(default)]
    pub principal_id: Option<String>,
    /// Deprecated by AWS in favour of `PrincipalName`, still sent by some producers.
    #[serde(default)]
    pub user_name: Option<String>,
    #[serde(default)]
    pub access_key_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffIamUser {
    #[serde(default)]
    pub user_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffIamRole {
    #[serde(default)]
    pub role_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffNetwork {
    #[serde(default)]
    pub direction: Option<String>,
    #[serde(default)]
    pub source_ip_v4: Option<String>,
    #[serde(default)]
    pub destination_domain: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffAction {
    #[serde(default)]
    pub action_type: Option<String>,
    #[serde(default)]
    pub aws_api_call_action: Option<AsffAwsApiCallAction>,
    #[serde(default)]
    pub network_connection_action: Option<AsffNetworkConnectionAction>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffAwsApiCallAction {
    #[serde(default)]
    pub api: Option<String>,
    #[serde(default)]
    pub remote_ip_details: Option<AsffRemoteIpDetails>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffNetworkConnectionAction {
    #[serde(default)]
    pub remote_ip_details: Option<AsffRemoteIpDetails>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffRemoteIpDetails {
    #[serde(default)]
    pub ip_address_v4: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffWorkflow {
    #[serde(default)]
    pub status: Option<String>,
}
