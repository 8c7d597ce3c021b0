//! The normalised [`Incident`]: one shape for GuardDuty and Security Hub findings.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::FindingError;
use crate::finding::{
    AsffFinding, AsffResource, EventEnvelope, GdTag, GuardDutyFinding, ParsedEvent,
};

/// Where the finding came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingSource {
    GuardDuty,
    SecurityHub,
    SecurityHubCustomAction,
}

/// Severity label on the GuardDuty / ASFF scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SeverityLabel {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl fmt::Display for SeverityLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            SeverityLabel::Informational => "INFORMATIONAL",
            SeverityLabel::Low => "LOW",
            SeverityLabel::Medium => "MEDIUM",
            SeverityLabel::High => "HIGH",
            SeverityLabel::Critical => "CRITICAL",
        };
        f.write_str(s)
    }
}

/// Severity as a 0–10 score (GuardDuty's scale) and its label.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Severity {
    pub score: f64,
    pub label: SeverityLabel,
}

impl Severity {
    /// GuardDuty bands: 1.0–3.9 Low, 4.0–6.9 Medium, 7.0–8.9 High, 9.0–10.0 Critical.
    pub fn from_guardduty(score: f64) -> Option<Severity> {
        if !score.is_finite() || !(0.0..=10.0).contains(&score) {
            return None;
        }
        let label = match score {
            s if s >= 9.0 => SeverityLabel::Critical,
            s if s >= 7.0 => SeverityLabel::High,
            s if s >= 4.0 => SeverityLabel::Medium,
            s if s >= 1.0 => SeverityLabel::Low,
            _ => SeverityLabel::Informational,
        };
        Some(Severity { score, label })
    }

    /// ASFF: `Label` wins; `Normalized` (0–100) gives the score and, without a label, the band
    /// (0 informational, 1–39 low, 40–69 medium, 70–89 high, 90–100 critical).
    pub fn from_asff(label: Option<&str>, normalized: Option<f64>) -> Option<Severity> {
        let normalized = match normalized {
            Some(n) if n.is_finite() && (0.0..=100.0).contains(&n) => Some(n),
            Some(_) => return None,
            None => None,
        };
        let label = match label {
            Some(l) => Some(match l.to_ascii_uppercase().as_str() {
                "INFORMATIONAL" => SeverityLabel::Informational,
                "LOW" => SeverityLabel::Low,
                "MEDIUM" => SeverityLabel::Medium,
                "HIGH" => SeverityLabel::High,
                "CRITICAL" => SeverityLabel::Critical,
                _ => return None,
            }),
            None => None,
        };
        match (label, normalized) {
            (Some(label), Some(n)) => Some(Severity {
                score: n / 10.0,
                label,
            }),
            (Some(label), None) => Some(Severity {
                score: representative_score(label),
                label,
            }),
            (None, Some(n)) => {
                let label = match n {
                    n if n >= 90.0 => SeverityLabel::Critical,
                    n if n >= 70.0 => SeverityLabel::High,
                    n if n >= 40.0 => SeverityLabel::Medium,
                    n if n >= 1.0 => SeverityLabel::Low,
                    _ => SeverityLabel::Informational,
                };
                Some(Severity {
                    score: n / 10.0,
                    label,
                })
            }
            (None, None) => None,
        }
    }
}

fn representative_score(label: SeverityLabel) -> f64 {
    match label {
        SeverityLabel::Informational => 0.0,
        SeverityLabel::Low => 3.0,
        SeverityLabel::Medium => 5.0,
        SeverityLabel::High => 8.0,
        SeverityLabel::Critical => 9.0,
    }
}

/// A GuardDuty finding type, `ThreatPurpose:ResourceTypeAffected/ThreatFamilyName.DetectionMechanism!Artifact`,
/// e.g. `CryptoCurrency:EC2/BitcoinTool.B!DNS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingType {
    pub threat_purpose: String,
    pub resource_type: String,
    pub threat_family: String,
    pub detection_mechanism: Option<String>,
    pub artifact: Option<String>,
}

impl FindingType {
    /// Parses a GuardDuty type. Returns `None` for anything not in that grammar (e.g. ASFF
    /// `Types` of other products), which is not an error: the type is then opaque.
    pub fn parse(s: &str) -> Option<FindingType> {
        let (purpose, rest) = s.split_once(':')?;
        let (resource, rest) = rest.split_once('/')?;
        let (rest, artifact) = match rest.split_once('!') {
            Some((r, a)) => (r, Some(a.to_string())),
            None => (rest, None),
        };
        let (family, mechanism) = match rest.split_once('.') {
            Some((f, m)) => (f, Some(m.to_string())),
            None => (rest, None),
        };
        let valid = |p: &str| !p.is_empty() && !p.contains(char::is_whitespace);
        if !valid(purpose) || !valid(resource) || !valid(family) {
            return None;
        }
        Some(FindingType {
            threat_purpose: purpose.to_string(),
            resource_type: resource.to_string(),
            threat_family: family.to_string(),
            detection_mechanism: mechanism,
            artifact,
        })
    }

    /// GuardDuty findings forwarded to Security Hub carry their type in `Types` as
    /// `TTPs/<tactic>/<Purpose>:<Resource>-<Family...>`: the last path segment with the first
    /// `-` after the colon standing for `/`. Returns the GuardDuty spelling.
    pub fn from_asff_type(asff_type: &str) -> Option<String> {
        let last = asff_type.rsplit('/').next()?;
        let (purpose, rest) = last.split_once(':')?;
        let (resource, family) = rest.split_once('-')?;
        let candidate = format!("{purpose}:{resource}/{family}");
        FindingType::parse(&candidate).map(|_| candidate)
    }
}

/// Whether the affected resource did the bad thing or had it done to it (GuardDuty `resourceRole`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResourceRole {
    Actor,
    Target,
}

impl ResourceRole {
    fn parse(s: &str) -> Option<ResourceRole> {
        match s.to_ascii_uppercase().as_str() {
            "ACTOR" => Some(ResourceRole::Actor),
            "TARGET" => Some(ResourceRole::Target),
            _ => None,
        }
    }
}

/// One elastic network interface of an affected instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInterface {
    pub eni_id: String,
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
    pub security_group_ids: Vec<String>,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
}

/// An affected resource, normalised. The first resource of an [`Incident`] is the primary one,
/// the one the playbook acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Resource {
    Ec2Instance {
        instance_id: String,
        vpc_id: Option<String>,
        network_interfaces: Vec<NetworkInterface>,
        instance_profile_arn: Option<String>,
        tags: BTreeMap<String, String>,
    },
    IamUser {
        user_name: String,
        access_key_id: Option<String>,
    },
    IamRole {
        role_name: String,
        /// The session name (for GuardDuty, after the `:` of an `AROA…:session` principal id).
        session_name: Option<String>,
        access_key_id: Option<String>,
    },
    RootUser {
        access_key_id: Option<String>,
    },
    S3Bucket {
        bucket_name: String,
        arn: Option<String>,
        publicly_accessible: Option<bool>,
        tags: BTreeMap<String, String>,
    },
    Other {
        resource_type: String,
        id: String,
        tags: BTreeMap<String, String>,
    },
}

impl Resource {
    /// A short id for tables and logs.
    pub fn display_id(&self) -> String {
        match self {
            Resource::Ec2Instance { instance_id, .. } => instance_id.clone(),
            Resource::IamUser { user_name, .. } => format!("user/{user_name}"),
            Resource::IamRole { role_name, .. } => format!("role/{role_name}"),
            Resource::RootUser { .. } => "root".to_string(),
            Resource::S3Bucket { bucket_name, .. } => format!("s3://{bucket_name}"),
            Resource::Other {
                resource_type, id, ..
            } => format!("{resource_type}:{id}"),
        }
    }

    /// Tags the finding reported for this resource (IAM principals carry none in findings).
    pub fn tags(&self) -> Option<&BTreeMap<String, String>> {
        match self {
            Resource::Ec2Instance { tags, .. }
            | Resource::S3Bucket { tags, .. }
            | Resource::Other { tags, .. } => Some(tags),
            _ => None,
        }
    }
}

/// Who acted, where a finding says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub kind: PrincipalKind,
    pub name: Option<String>,
    pub principal_id: Option<String>,
    pub access_key_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    IamUser,
    AssumedRole,
    Role,
    Root,
    FederatedUser,
    AwsService,
    Unknown,
}

impl PrincipalKind {
    fn parse(s: &str) -> PrincipalKind {
        match s {
            "IAMUser" | "AwsIamUser" => PrincipalKind::IamUser,
            "AssumedRole" => PrincipalKind::AssumedRole,
            "Role" | "AwsIamRole" => PrincipalKind::Role,
            "Root" => PrincipalKind::Root,
            "FederatedUser" => PrincipalKind::FederatedUser,
            "AWSService" | "AwsService" => PrincipalKind::AwsService,
            _ => PrincipalKind::Unknown,
        }
    }
}

/// The remote side of the activity, where the finding names one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteActor {
    pub ip: Option<IpAddr>,
    pub country: Option<String>,
    pub domain: Option<String>,
    pub api: Option<String>,
}

/// The custom action an analyst chose in Security Hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomAction {
    pub name: String,
    pub arn: Option<String>,
}

/// One incident: a finding normalised into what the response needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Deterministic: derived from the finding's canonical id, so repeats map to one incident.
    pub incident_id: String,
    pub source: FindingSource,
    pub product: String,
    /// The ASFF `ProductArn` Security Hub knows the finding by (for a GuardDuty finding, the
    /// copy GuardDuty's Security Hub integration imports).
    #[serde(default)]
    pub product_arn: Option<String>,
    pub finding_id: String,
    /// The key the incident id is derived from (the finding ARN where there is one).
    pub finding_key: String,
    pub finding_type: String,
    pub parsed_type: Option<FindingType>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub severity: Severity,
    pub account_id: String,
    pub region: String,
    pub partition: String,
    pub resource_role: Option<ResourceRole>,
    /// Affected resources, primary first.
    pub resources: Vec<Resource>,
    pub principal: Option<Principal>,
    pub remote: Option<RemoteActor>,
    pub first_seen: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub occurrences: u64,
    pub archived: bool,
    pub custom_action: Option<CustomAction>,
    pub event_id: Option<String>,
}

impl Incident {
    /// Normalises every finding an event carries (Security Hub events may carry several).
    pub fn from_event(
        envelope: &EventEnvelope,
        event: ParsedEvent,
    ) -> Result<Vec<Incident>, FindingError> {
        match event {
            ParsedEvent::GuardDuty(f) => Ok(vec![from_guardduty(envelope, &f)?]),
            ParsedEvent::SecurityHubImported(findings) => findings
                .iter()
                .map(|f| from_asff(envelope, f, FindingSource::SecurityHub, None))
                .collect(),
            ParsedEvent::SecurityHubCustomAction {
                action_name,
                action_arn,
                findings,
            } => {
                let action = CustomAction {
                    name: action_name,
                    arn: action_arn,
                };
                findings
                    .iter()
                    .map(|f| {
                        from_asff(
                            envelope,
                            f,
                            FindingSource::SecurityHubCustomAction,
                            Some(action.clone()),
                        )
                    })
                    .collect()
            }
        }
    }

    /// Parses and normalises an EventBridge event given as a JSON value.
    pub fn from_event_value(value: serde_json::Value) -> Result<Vec<Incident>, FindingError> {
        let (envelope, parsed) = ParsedEvent::from_value(value)?;
        Incident::from_event(&envelope, parsed)
    }

    /// The resource the playbook acts on.
    pub fn primary_resource(&self) -> Option<&Resource> {
        self.resources.first()
    }

    /// All tags the finding reported on its resources (for protected-tag checks).
    pub fn resource_tags(&self) -> impl Iterator<Item = (&String, &String)> {
        self.resources.iter().filter_map(Resource::tags).flatten()
    }
}

/// GuardDuty's `resource.resourceType` of an attack-sequence finding.
pub const ATTACK_SEQUENCE: &str = "AttackSequence";

/// `inc-` and the first 20 hex digits of SHA-256 over the finding's canonical key.
pub fn incident_id_for(finding_key: &str) -> String {
    let digest = Sha256::digest(finding_key.as_bytes());
    format!("inc-{}", &hex::encode(digest)[..20])
}

fn tags_from(tags: &[GdTag]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect()
}

fn parse_ip(finding_id: &str, raw: Option<&String>) -> Result<Option<IpAddr>, FindingError> {
    match raw {
        None => Ok(None),
        Some(s) => s
            .parse::<IpAddr>()
            .map(Some)
            .map_err(|e| FindingError::InvalidField {
                finding_id: finding_id.to_string(),
                field: "remote IP address",
                message: format!("`{s}`: {e}"),
            }),
    }
}

fn require_non_empty(finding_id: &str, field: &'static str, v: &str) -> Result<(), FindingError> {
    if v.trim().is_empty() {
        return Err(FindingError::MissingField {
            finding_id: finding_id.to_string(),
            field,
        });
    }
    Ok(())
}

/// Splits GuardDuty's `principalId` for an assumed role (`AROA…:session-name`) into its session.
fn session_of(principal_id: Option<&String>) -> Option<String> {
    principal_id
        .and_then(|p| p.split_once(':'))
        .map(|(_, session)| session.to_string())
}

fn principal_resource(
    kind: PrincipalKind,
    name: Option<String>,
    principal_id: Option<&String>,
    key: Option<String>,
) -> Option<Resource> {
    match kind {
        PrincipalKind::Root => Some(Resource::RootUser { access_key_id: key }),
        PrincipalKind::IamUser => name.map(|user_name| Resource::IamUser {
            user_name,
            access_key_id: key,
        }),
        PrincipalKind::AssumedRole | PrincipalKind::Role => {
            name.map(|role_name| Resource::IamRole {
                role_name,
                session_name: session_of(principal_id),
                access_key_id: key,
            })
        }
        _ => None,
    }
}

fn from_guardduty(
    envelope: &EventEnvelope,
    f: &GuardDutyFinding,
) -> Result<Incident, FindingError> {
    let fid = f.id.as_str();
    require_non_empty(fid, "id", fid)?;
    require_non_empty(fid, "type", &f.finding_type)?;
    require_non_empty(fid, "accountId", &f.account_id)?;
    let severity =
        Severity::from_guardduty(f.severity).ok_or_else(|| FindingError::InvalidField {
            finding_id: fid.to_string(),
            field: "severity",
            message: format!("{} is outside 0–10", f.severity),
        })?;
    let service = f.service.clone().unwrap_or_default();
    let parsed_type = FindingType::parse(&f.finding_type);

    // Principal (access key details), when the finding names one.
    let principal = f.resource.access_key_details.as_ref().map(|ak| Principal {
        kind: ak
            .user_type
            .as_deref()
            .map(PrincipalKind::parse)
            .unwrap_or(PrincipalKind::Unknown),
        name: ak.user_name.clone(),
        principal_id: ak.principal_id.clone(),
        access_key_id: ak.access_key_id.clone(),
    });
    let principal_as_resource = principal.as_ref().and_then(|p| {
        principal_resource(
            p.kind,
            p.name.clone(),
            p.principal_id.as_ref(),
            p.access_key_id.clone(),
        )
    });

    let instance = match &f.resource.instance_details {
        Some(d) => match &d.instance_id {
            Some(id) if !id.is_empty() => Some(Resource::Ec2Instance {
                instance_id: id.clone(),
                vpc_id: d.network_interfaces.iter().find_map(|n| n.vpc_id.clone()),
                network_interfaces: d
                    .network_interfaces
                    .iter()
                    .filter_map(|n| {
                        Some(NetworkInterface {
                            eni_id: n.network_interface_id.clone()?,
                            vpc_id: n.vpc_id.clone(),
                            subnet_id: n.subnet_id.clone(),
                            security_group_ids: n
                                .security_groups
                                .iter()
                                .map(|g| g.group_id.clone())
                                .collect(),
                            private_ip: n.private_ip_address.clone(),
                            public_ip: n.public_ip.clone(),
                        })
                    })
                    .collect(),
                instance_profile_arn: d.iam_instance_profile.as_ref().and_then(|p| p.arn.clone()),
                tags: tags_from(&d.tags),
            }),
            _ => None,
        },
        None => None,
    };
    let buckets: Vec<Resource> = f
        .resource
        .s3_bucket_details
        .iter()
        .flatten()
        .filter_map(|b| {
            let name = b.name.clone().or_else(|| {
                b.arn
                    .as_ref()
                    .and_then(|a| a.strip_prefix("arn:aws:s3:::").map(str::to_string))
            })?;
            Some(Resource::S3Bucket {
                bucket_name: name,
                arn: b.arn.clone(),
                publicly_accessible: b
                    .public_access
                    .as_ref()
                    .and_then(|p| p.effective_permission.as_deref())
                    .map(|p| p.eq_ignore_ascii_case("PUBLIC")),
                tags: tags_from(&b.tags),
            })
        })
        .collect();

    // The primary resource follows GuardDuty's resourceType; a finding that names a resource
    // type but omits its details is partial and is refused rather than guessed at.
    let missing = |field| FindingError::MissingField {
        finding_id: fid.to_string(),
        field,
    };
    let mut resources = Vec::new();
    match f.resource.resource_type.as_str() {
        "Instance" => {
            resources.push(instance.ok_or_else(|| missing("resource.instanceDetails.instanceId"))?);
            resources.extend(principal_as_resource);
        }
        "AccessKey" => {
            let p = principal
                .as_ref()
                .ok_or_else(|| missing("resource.accessKeyDetails"))?;
            let r = match principal_as_resource {
                Some(r) => r,
                // A principal of a kind we cannot act on (federated user, service) stays visible.
                None => Resource::Other {
                    resource_type: "AccessKey".into(),
                    id: p
                        .access_key_id
                        .clone()
                        .or_else(|| p.name.clone())
                        .ok_or_else(|| missing("resource.accessKeyDetails.accessKeyId"))?,
                    tags: BTreeMap::new(),
                },
            };
            resources.push(r);
            resources.extend(instance);
        }
        "S3Bucket" => {
            if buckets.is_empty() {
                return Err(missing("resource.s3BucketDetails[].name"));
            }
            resources.extend(buckets);
            resources.extend(principal_as_resource);
        }
        "" => return Err(missing("resource.resourceType")),
        // An attack sequence (Extended Threat Detection) names no resource of its own: the
        // resources are its signals' (`service.detection.sequence`). Without them there is
        // nothing to act on; the finding is accepted with no resource (route generic).
        ATTACK_SEQUENCE => {}
        other => {
            resources.push(Resource::Other {
                resource_type: other.to_string(),
                id: f
                    .resource
                    .other_resource_name()
                    .or_else(|| instance.as_ref().map(Resource::display_id))
                    .unwrap_or_else(|| fid.to_string()),
                tags: instance
                    .as_ref()
                    .and_then(Resource::tags)
                    .cloned()
                    .unwrap_or_default(),
            });
        }
    }

    let action = service.action.clone().unwrap_or_default();
    let (raw_ip, country) = [
        action
            .network_connection_action
            .as_ref()
            .and_then(|a| a.remote_ip_details.as_ref()),
        action
            .aws_api_call_action
            .as_ref()
            .and_then(|a| a.remote_ip_details.as_ref()),
        action
            .port_probe_action
            .as_ref()
            .and_then(|a| a.port_probe_details.first())
            .and_then(|d| d.remote_ip_details.as_ref()),
    ]
    .into_iter()
    .flatten()
    .map(|r| {
        (
            r.ip_address_v4.clone(),
            r.country.as_ref().and_then(|c| c.country_name.clone()),
        )
    })
    .next()
    .unwrap_or((None, None));
    let remote = RemoteActor {
        ip: parse_ip(fid, raw_ip.as_ref())?,
        country,
        domain: action
            .dns_request_action
            .as_ref()
            .and_then(|d| d.domain.clone()),
        api: action
            .aws_api_call_action
            .as_ref()
            .and_then(|a| a.api.clone()),
    };

    let partition = f.partition.clone().unwrap_or_else(|| "aws".to_string());
    let finding_key = f.arn.clone().unwrap_or_else(|| {
        format!(
            "arn:{partition}:guardduty:{}:{}:detector/{}/finding/{}",
            f.region,
            f.account_id,
            service.detector_id.as_deref().unwrap_or("unknown"),
            f.id
        )
    });
    Ok(Incident {
        incident_id: incident_id_for(&finding_key),
        source: FindingSource::GuardDuty,
        product: "GuardDuty".into(),
        product_arn: Some(format!(
            "arn:{partition}:securityhub:{}::product/aws/guardduty",
            f.region
        )),
        finding_id: f.id.clone(),
        finding_key,
        finding_type: f.finding_type.clone(),
        parsed_type,
        title: f.title.clone(),
        description: f.description.clone(),
        severity,
        account_id: f.account_id.clone(),
        region: f.region.clone(),
        partition,
        resource_role: service
            .resource_role
            .as_deref()
            .and_then(ResourceRole::parse),
        resources,
        principal,
        remote: (remote != RemoteActor::default()).then_some(remote),
        first_seen: service.event_first_seen,
        last_seen: service.event_last_seen,
        created_at: f.created_at,
        updated_at: f.updated_at,
        occurrences: service.count.unwrap_or(1),
        archived: service.archived.unwrap_or(false),
        custom_action: None,
        event_id: envelope.id.clone(),
    })
}

fn asff_resource(finding_id: &str, r: &AsffResource) -> Result<Resource, FindingError> {
    let details = r.details.clone().unwrap_or_default();
    let arn_tail = |marker: &str| r.id.rsplit_once(marker).map(|(_, t)| t.to_string());
    let res = match r.resource_type.as_str() {
        "AwsEc2Instance" => {
            let d = details.aws_ec2_instance.unwrap_or_default();
            let instance_id = arn_tail("instance/").unwrap_or_else(|| r.id.clone());
            if !instance_id.starts_with("i-") {
                return Err(FindingError::InvalidField {
                    finding_id: finding_id.to_string(),
                    field: "Resources[].Id",
                    message: format!("`{}` is not an EC2 instance id or ARN", r.id),
                });
            }
            Resource::Ec2Instance {
                instance_id,
                vpc_id: d.vpc_id.clone(),
                network_interfaces: d
                    .network_interfaces
                    .iter()
                    .map(|n| NetworkInterface {
                        eni_id: n.network_interface_id.clone(),
                        vpc_id: d.vpc_id.clone(),
                        subnet_id: d.subnet_id.clone(),
                        security_group_ids: vec![],
                        private_ip: None,
                        public_ip: None,
                    })
                    .collect(),
                instance_profile_arn: d.iam_instance_profile_arn,
                tags: r.tags.clone(),
            }
        }
        "AwsIamAccessKey" => {
            let d = details.aws_iam_access_key.unwrap_or_default();
            let key = d.access_key_id.clone().or_else(|| {
                r.id.rsplit_once(':')
                    .map(|(_, k)| k.to_string())
                    .filter(|k| k.starts_with("A"))
            });
            let kind = d
                .principal_type
                .as_deref()
                .map(PrincipalKind::parse)
                .unwrap_or(PrincipalKind::IamUser);
            let name = d.principal_name.clone().or(d.user_name.clone());
            principal_resource(kind, name, d.principal_id.as_ref(), key.clone()).unwrap_or(
                Resource::Other {
                    resource_type: r.resource_type.clone(),
                    id: key.unwrap_or_else(|| r.id.clone()),
                    tags: r.tags.clone(),
                },
            )
        }
        "AwsIamUser" => Resource::IamUser {
            user_name: details
                .aws_iam_user
                .and_then(|u| u.user_name)
                .or_else(|| {
                    arn_tail(":user/").map(|t| t.rsplit('/').next().unwrap_or(&t).to_string())
                })
                .unwrap_or_else(|| r.id.clone()),
            access_key_id: None,
        },
        "AwsIamRole" => Resource::IamRole {
            role_name: details
                .aws_iam_role
                .and_then(|u| u.role_name)
                .or_else(|| {
                    arn_tail(":role/").map(|t| t.rsplit('/').next().unwrap_or(&t).to_string())
                })
                .unwrap_or_else(|| r.id.clone()),
            session_name: None,
            access_key_id: None,
        },
        "AwsS3Bucket" => Resource::S3Bucket {
            bucket_name: r
                .id
                .strip_prefix("arn:aws:s3:::")
                .unwrap_or(&r.id)
                .to_string(),
            arn: r.id.starts_with("arn:").then(|| r.id.clone()),
            publicly_accessible: None,
            tags: r.tags.clone(),
        },
        other => Resource::Other {
            resource_type: other.to_string(),
            id: r.id.clone(),
            tags: r.tags.clone(),
        },
    };
    Ok(res)
}

/// The playbook-relevant kind of a resource: used to pick the primary resource of an ASFF finding.
fn playbook_rank(r: &Resource, hint: Option<&str>) -> u8 {
    let hinted = matches!(
        (r, hint),
        (Resource::Ec2Instance { .. }, Some("EC2"))
            | (Resource::S3Bucket { .. }, Some("S3"))
            | (
                Resource::IamUser { .. } | Resource::IamRole { .. } | Resource::RootUser { .. },
                Some("IAMUser")
            )
    );
    match (hinted, r) {
        (true, _) => 0,
        (false, Resource::Other { .. }) => 2,
        (false, _) => 1,
    }
}

fn from_asff(
    envelope: &EventEnvelope,
    f: &AsffFinding,
    source: FindingSource,
    custom_action: Option<CustomAction>,
) -> Result<Incident, FindingError> {
    let fid = f.id.as_str();
    require_non_empty(fid, "Id", fid)?;
    require_non_empty(fid, "AwsAccountId", &f.aws_account_id)?;
    let severity = Severity::from_asff(f.severity.label.as_deref(), f.severity.normalized)
        .ok_or_else(|| FindingError::InvalidField {
            finding_id: fid.to_string(),
            field: "Severity",
            message: format!(
                "label {:?} / normalized {:?} is not a valid severity",
                f.severity.label, f.severity.normalized
            ),
        })?;
    if f.resources.is_empty() {
        return Err(FindingError::MissingField {
            finding_id: fid.to_string(),
            field: "Resources",
        });
    }
    // GuardDuty findings forwarded to Security Hub keep their GuardDuty type (and id): use it,
    // so a finding seen through both paths is one incident with one type.
    let gd_type = f.types.iter().find_map(|t| FindingType::from_asff_type(t));
    let finding_type = gd_type
        .clone()
        .or_else(|| f.types.first().cloned())
        .unwrap_or_else(|| f.generator_id.clone().unwrap_or_else(|| "Unknown".into()));
    let parsed_type = FindingType::parse(&finding_type);
    let hint = parsed_type.as_ref().map(|t| t.resource_type.as_str());

    let mut resources = f
        .resources
        .iter()
        .map(|r| asff_resource(fid, r))
        .collect::<Result<Vec<_>, _>>()?;
    resources.sort_by_key(|r| playbook_rank(r, hint));

    let principal = f.resources.iter().find_map(|r| {
        let d = r.details.as_ref()?.aws_iam_access_key.as_ref()?;
        Some(Principal {
            kind: d
                .principal_type
                .as_deref()
                .map(PrincipalKind::parse)
                .unwrap_or(PrincipalKind::Unknown),
            name: d.principal_name.clone().or(d.user_name.clone()),
            principal_id: d.principal_id.clone(),
            access_key_id: d.access_key_id.clone(),
        })
    });

    let action = f.action.clone().unwrap_or_default();
    let raw_ip = f
        .network
        .as_ref()
        .and_then(|n| n.source_ip_v4.clone())
        .or_else(|| {
            action
                .aws_api_call_action
                .as_ref()
                .and_then(|a| a.remote_ip_details.as_ref()?.ip_address_v4.clone())
        })
        .or_else(|| {
            action
                .network_connection_action
                .as_ref()
                .and_then(|a| a.remote_ip_details.as_ref()?.ip_address_v4.clone())
        });
    let remote = RemoteActor {
        ip: parse_ip(fid, raw_ip.as_ref())?,
        country: None,
        domain: f
            .network
            .as_ref()
            .and_then(|n| n.destination_domain.clone()),
        api: action
            .aws_api_call_action
            .as_ref()
            .and_then(|a| a.api.clone()),
    };
    let field = |k: &str| f.product_fields.get(k).map(String::as_str);
    let region = f
        .region
        .clone()
        .or_else(|| f.resources.first().and_then(|r| r.region.clone()))
        .or_else(|| envelope.region.clone())
        .ok_or_else(|| FindingError::MissingField {
            finding_id: fid.to_string(),
            field: "Region",
        })?;
    let product = f
        .product_name
        .clone()
        .or_else(|| field("aws/securityhub/ProductName").map(str::to_string))
        .unwrap_or_else(|| {
            f.product_arn
                .rsplit('/')
                .next()
                .unwrap_or("Security Hub")
                .to_string()
        });

    Ok(Incident {
        incident_id: incident_id_for(fid),
        source,
        product,
        product_arn: Some(f.product_arn.clone()),
        finding_id: fid.rsplit('/').next().unwrap_or(fid).to_string(),
        finding_key: fid.to_string(),
        finding_type,
        parsed_type,
        title: f.title.clone(),
        description: f.description.clone(),
        severity,
        account_id: f.aws_account_id.clone(),
        region,
        partition: f
            .resources
            .first()
            .and_then(|r| r.partition.clone())
            .unwrap_or_else(|| "aws".into()),
        resource_role: field("aws/guardduty/service/resourceRole").and_then(ResourceRole::parse),
        resources,
        principal,
        remote: (remote != RemoteActor::default()).then_some(remote),
        first_seen: f.first_observed_at,
        last_seen: f.last_observed_at,
        created_at: f.created_at,
        updated_at: f.updated_at,
        occurrences: field("aws/guardduty/service/count")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1),
        archived: f.record_state.as_deref() == Some("ARCHIVED")
            || field("aws/guardduty/service/archived") == Some("true"),
        custom_action,
        event_id: envelope.id.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_finding_type_grammar() {
        let t = FindingType::parse("CryptoCurrency:EC2/BitcoinTool.B!DNS").expect("valid type");
        assert_eq!(t.threat_purpose, "CryptoCurrency");
        assert_eq!(t.resource_type, "EC2");
        assert_eq!(t.threat_family, "BitcoinTool");
        assert_eq!(t.detection_mechanism.as_deref(), Some("B"));
        assert_eq!(t.artifact.as_deref(), Some("DNS"));
        let t =
            FindingType::parse("Policy:S3/BucketBlockPublicAccessDisabled").expect("valid type");
        assert_eq!(t.threat_family, "BucketBlockPublicAccessDisabled");
        assert_eq!(t.detection_mechanism, None);
        assert!(FindingType::parse("Software and Configuration Checks").is_none());
        assert!(FindingType::parse(":EC2/X").is_none());
    }

    #[test]
    fn maps_asff_types_back_to_guardduty() {
        assert_eq!(
            FindingType::from_asff_type("TTPs/Command and Control/Backdoor:EC2-C&CActivity.B")
                .as_deref(),
            Some("Backdoor:EC2/C&CActivity.B")
        );
        assert_eq!(
            FindingType::from_asff_type(
                "Software and Configuration Checks/AWS Security Best Practices/Effects-Data Exposure"
            ),
            None
        );
    }

    #[test]
    fn severity_bands() {
        assert_eq!(
            Severity::from_guardduty(8.0).map(|s| s.label),
            Some(SeverityLabel::High)
        );
        assert_eq!(
            Severity::from_guardduty(9.0).map(|s| s.label),
            Some(SeverityLabel::Critical)
        );
        assert_eq!(
            Severity::from_guardduty(6.9).map(|s| s.label),
            Some(SeverityLabel::Medium)
        );
        assert_eq!(Severity::from_guardduty(11.0), None);
        assert_eq!(Severity::from_guardduty(f64::NAN), None);
        assert_eq!(
            Severity::from_asff(None, Some(75.0)).map(|s| s.label),
            Some(SeverityLabel::High)
        );
        assert_eq!(
            Severity::from_asff(Some("critical"), None).map(|s| s.label),
            Some(SeverityLabel::Critical)
        );
        assert_eq!(Severity::from_asff(Some("SEVERE"), None), None);
        assert_eq!(Severity::from_asff(None, None), None);
    }

    #[test]
    fn incident_ids_are_deterministic_and_distinct() {
        let a = incident_id_for("arn:aws:guardduty:us-east-1:1:detector/d/finding/a");
        assert_eq!(
            a,
            incident_id_for("arn:aws:guardduty:us-east-1:1:detector/d/finding/a")
        );
        assert_ne!(
            a,
            incident_id_for("arn:aws:guardduty:us-east-1:1:detector/d/finding/b")
        );
        assert!(a.starts_with("inc-") && a.len() == 24);
    }
}
