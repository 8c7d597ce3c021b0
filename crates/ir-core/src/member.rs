//! Acting where the resource lives: the finding's account and Region.
//!
//! Findings of a whole AWS Organization arrive in one (delegated administrator) account. A
//! function reads and changes a resource with clients for the resource's Region and, when the
//! resource is in another account, with the credentials of the member role
//! `arn:<partition>:iam::<account>:role/<IR_MEMBER_ROLE_NAME>` (deployed by `infra/member/`),
//! assumed with the ExternalId `IR_MEMBER_EXTERNAL_ID` and the session name `ir-<incident>`, so
//! the member account's CloudTrail shows which incident acted. Credentials are kept per account
//! and incident for the life of the container and assumed again five minutes before they
//! expire. The kill switch, the pre-state table and the evidence bucket stay in the
//! function's own account: only the clients that touch the resource move.
//!
//! Every refusal is typed ([`ReachError`]) and reaches the failure notification with what to
//! fix; an account id or Region from the finding is checked before it is put in an ARN.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_sdk_sts::error::ProvideErrorMetadata;
use thiserror::Error;
use tokio::sync::Mutex;

use crate::error::ConfigError;
use crate::incident::Incident;
use crate::permissions::Permission;

/// Assuming the member role in any account of the organization (the role's trust policy and
/// ExternalId decide whether it works).
pub const ASSUME_MEMBER_ROLE: Permission = Permission::new(
    "sts:AssumeRole",
    "arn:{partition}:iam::*:role/{prefix}-member",
);

/// Credentials this close to expiry are assumed again.
const REFRESH_BEFORE: Duration = Duration::from_secs(300);
/// RoleSessionName: 2–64 characters of `[\w+=,.@-]` (STS API reference, AssumeRole).
const SESSION_NAME_MAX: usize = 64;

/// Why a function cannot act on a resource where it lives.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReachError {
    #[error("the resource is in account {account}, this function runs in {own}, and cross-account response is not configured: deploy infra/member in {account} and set organization_response (IR_MEMBER_ROLE_NAME)")]
    NotConfigured { account: String, own: String },
    #[error("could not assume {role}: {message}. Deploy infra/member in that account (the role, its trust in this account's incident-response roles) and check the ExternalId")]
    MemberAccessDenied { role: String, message: String },
    #[error("Region {region} refused the call ({message}): enable the Region in account {account}, or leave it out of the response")]
    RegionNotEnabled {
        region: String,
        account: String,
        message: String,
    },
    #[error("the resource is in partition {target}, this function runs in {own}: deploy a responder in {target}")]
    OtherPartition { target: String, own: String },
    #[error("the finding's {what} {value:?} is not a valid AWS {what}")]
    InvalidTarget { what: &'static str, value: String },
    #[error("could not assume {role}: {message}")]
    Sts { role: String, message: String },
}

impl ReachError {
    /// The error type the state machine and the failure notification see.
    pub fn error_type(&self) -> &'static str {
        match self {
            ReachError::NotConfigured { .. } => "CrossAccountNotConfigured",
            ReachError::MemberAccessDenied { .. } => "MemberAccessDenied",
            ReachError::RegionNotEnabled { .. } => "RegionNotEnabled",
            ReachError::OtherPartition { .. } => "OtherPartition",
            ReachError::InvalidTarget { .. } => "InvalidTarget",
            ReachError::Sts { .. } => "MemberAccessFailed",
        }
    }
}

/// Where a resource lives, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub partition: String,
    pub account: String,
    pub region: String,
}

impl Place {
    /// The incident's account, Region and partition, each checked against AWS's formats.
    pub fn of(incident: &Incident) -> Result<Place, ReachError> {
        let invalid = |what, value: &str| ReachError::InvalidTarget {
            what,
            value: value.to_string(),
        };
        let account = &incident.account_id;
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("account id", account));
        }
        if !matches!(incident.partition.as_str(), "aws" | "aws-cn" | "aws-us-gov") {
            return Err(invalid("partition", &incident.partition));
        }
        if !is_region(&incident.region) {
            return Err(invalid("Region", &incident.region));
        }
        Ok(Place {
            partition: incident.partition.clone(),
            account: account.clone(),
            region: incident.region.clone(),
        })
    }
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`, `ap-southeast-5`...
fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts.len() <= 4
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1]
            .parse::<u8>()
            .is_ok_and(|n| n > 0 && region.len() <= 25)
}

/// `ir-<incident>`, with what STS does not accept in a session name replaced by `-`.
pub fn session_name(incident_id: &str) -> String {
    let clean: String = format!("ir-{incident_id}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    clean.chars().take(SESSION_NAME_MAX).collect()
}

/// The member role settings: `IR_MEMBER_ROLE_NAME` (unset: cross-account response off) and
/// `IR_MEMBER_EXTERNAL_ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRole {
    pub name: String,
    pub external_id: String,
}

impl MemberRole {
    pub fn from_env() -> Result<Option<MemberRole>, ConfigError> {
        let name = std::env::var("IR_MEMBER_ROLE_NAME").unwrap_or_default();
        if name.trim().is_empty() {
            return Ok(None);
        }
        let external_id = crate::config::env_required("IR_MEMBER_EXTERNAL_ID")?;
        Ok(Some(MemberRole {
            name: name.trim().to_string(),
            external_id: external_id.trim().to_string(),
        }))
    }
}

/// Clients for where a resource lives: the function's own credentials in its own account, the
/// member role's elsewhere.
#[derive(Debug)]
pub struct Reach {
    base: SdkConfig,
    own_account: String,
    own_partition: String,
    member: Option<MemberRole>,
    /// Member-role credentials per (account, Region, session name); each carries its expiry.
    held: Mutex<HashMap<(String, String, String), Credentials>>,
    /// STS clients per Region, built once (a client costs several ms to build).
    sts: std::sync::Mutex<HashMap<String, aws_sdk_sts::Client>>,
}

impl Reach {
    /// `base` signs as the function itself; `own_account`/`own_partition` are where it runs.
    pub fn new(
        base: SdkConfig,
        own_account: &str,
        own_partition: &str,
        member: Option<MemberRole>,
    ) -> Reach {
        Reach {
            base,
            own_account: own_account.to_string(),
            own_partition: own_partition.to_string(),
            member,
            held: Mutex::new(HashMap::new()),
            sts: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The function's own account and partition from `IR_ACCOUNT_ID` / `IR_PARTITION`
    /// (Terraform sets both), else from `sts:GetCallerIdentity` (which needs no permission);
    /// the member role settings from the environment.
    pub async fn from_env(base: SdkConfig) -> Result<Reach, lambda_runtime::Error> {
        let member = MemberRole::from_env()?;
        let account = std::env::var("IR_ACCOUNT_ID").unwrap_or_default();
        if !account.trim().is_empty() {
            let partition = crate::config::env_or("IR_PARTITION", "aws");
            return Ok(Reach::new(base, account.trim(), partition.trim(), member));
        }
        let me = crate::aws_client!(aws_sdk_sts, &base)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| aws_sdk_sts::error::DisplayErrorContext(e).to_string())?;
        let account = me.account().unwrap_or_default().to_string();
        let partition = me
            .arn()
            .and_then(|a| a.split(':').nth(1))
            .unwrap_or("aws")
            .to_string();
        Ok(Reach::new(base, &account, &partition, member))
    }

    /// SDK configuration for `place`: its Region, and the member role's credentials when the
    /// account is not this function's own.
    pub async fn sdk_for(&self, place: &Place, incident_id: &str) -> Result<SdkConfig, ReachError> {
        if place.partition != self.own_partition {
            return Err(ReachError::OtherPartition {
                target: place.partition.clone(),
                own: self.own_partition.clone(),
            });
        }
        let regional = self
            .base
            .clone()
            .into_builder()
            .region(aws_config::Region::new(place.region.clone()));
        if place.account == self.own_account {
            return Ok(regional.build());
        }
        let credentials = self.member_credentials(place, incident_id).await?;
        Ok(regional
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            .build())
    }

    async fn member_credentials(
        &self,
        place: &Place,
        incident_id: &str,
    ) -> Result<Credentials, ReachError> {
        let Some(member) = &self.member else {
            return Err(ReachError::NotConfigured {
                account: place.account.clone(),
                own: self.own_account.clone(),
            });
        };
        let session = session_name(incident_id);
        let key = (place.account.clone(), place.region.clone(), session.clone());
        let mut held = self.held.lock().await;
        if let Some(c) = held.get(&key) {
            if c.expiry()
                .is_some_and(|e| e > SystemTime::now() + REFRESH_BEFORE)
            {
                return Ok(c.clone());
            }
        }
        let role = format!(
            "arn:{}:iam::{}:role/{}",
            place.partition, place.account, member.name
        );
        let fresh = self.assume(&role, member, &session, place).await?;
        held.insert(key, fresh.clone());
        Ok(fresh)
    }

    /// The STS client of `region`, built on first use.
    fn sts_in(&self, region: &str) -> aws_sdk_sts::Client {
        let build = || {
            crate::aws_client!(aws_sdk_sts, &self.base, |b| b
                .region(aws_config::Region::new(region.to_string())))
        };
        match self.sts.lock() {
            Ok(mut clients) => clients
                .entry(region.to_string())
                .or_insert_with(build)
                .clone(),
            Err(_) => build(),
        }
    }

    async fn assume(
        &self,
        role: &str,
        member: &MemberRole,
        session: &str,
        place: &Place,
    ) -> Result<Credentials, ReachError> {
        // STS of the resource's Region: a Region the account has not enabled answers
        // RegionDisabledException there, before anything is tried in it.
        let out = self
            .sts_in(&place.region)
            .assume_role()
            .role_arn(role)
            .role_session_name(session)
            .external_id(&member.external_id)
            .send()
            .await;
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                let code = e
                    .as_service_error()
                    .and_then(|s| s.code())
                    .map(str::to_string);
                let message = aws_sdk_sts::error::DisplayErrorContext(e).to_string();
                return Err(match code.as_deref() {
                    Some("AccessDenied") => ReachError::MemberAccessDenied {
                        role: role.to_string(),
                        message,
                    },
                    Some("RegionDisabledException") => ReachError::RegionNotEnabled {
                        region: place.region.clone(),
                        account: place.account.clone(),
                        message,
                    },
                    _ => ReachError::Sts {
                        role: role.to_string(),
                        message,
                    },
                });
            }
        };
        let c = out.credentials().ok_or_else(|| ReachError::Sts {
            role: role.to_string(),
            message: "AssumeRole returned no credentials".into(),
        })?;
        let expires = SystemTime::try_from(*c.expiration())
            .unwrap_or_else(|_| SystemTime::now() + REFRESH_BEFORE);
        Ok(Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            Some(expires),
            "ir-member-role",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_name_carries_the_incident_and_fits_sts() {
        assert_eq!(session_name("inc-7f3a"), "ir-inc-7f3a");
        let odd = session_name(&format!("a b/c:{}", "x".repeat(100)));
        assert!(odd.starts_with("ir-a-b-c-x"));
        assert_eq!(odd.len(), SESSION_NAME_MAX);
    }

    #[test]
    fn regions_are_checked_before_they_reach_a_client() {
        for ok in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "cn-north-1",
            "ap-southeast-5",
        ] {
            assert!(is_region(ok), "{ok}");
        }
        for bad in [
            "",
            "us-east",
            "US-EAST-1",
            "us-east-1/../x",
            "eu-west-0",
            "a-b-c-d-1",
        ] {
            assert!(!is_region(bad), "{bad}");
        }
    }
}
