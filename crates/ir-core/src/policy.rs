//! Policy-as-code: which findings get which response.
//!
//! The default policy is `policy/default.toml` in the repository (compiled in); a deployment can
//! replace it with `IR_POLICY_FILE` (a path) or `IR_POLICY` (inline TOML). The evaluation is
//! pure: the same incident, policy and clock always give the same [`PolicyDecision`].
//!
//! Order of evaluation:
//! 1. route from the primary resource ([`route_for`]);
//! 2. archived findings and matching, unexpired suppressions → `suppressed`;
//! 3. tier: a configured custom action, else the first matching rule (a rule applies whatever the
//!    severity unless it sets its own `min_severity`), else `manual` for severity below
//!    `defaults.min_severity`, else `defaults.tier`;
//! 4. safety caps that no policy can loosen: `never_touch` resources, the root user,
//!    service-linked roles and resources without a playbook → `manual`; a protected resource (a
//!    protected tag, or `protected_resources`) → at most `approval`, escalated to an analyst
//!    rather than skipped, since a tag can be written by whoever controls the resource; a
//!    resource that was the *target* (victim) of the activity is capped at
//!    `defaults.target_max_tier`; a role whose quarantine revokes every session at
//!    `defaults.role_wide_revocation_max_tier`.

use std::fmt;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wildmatch::WildMatch;

use crate::orgunits::{first_in, OrgPath};

use crate::error::PolicyError;
use crate::incident::{Incident, Resource, ResourceRole};

/// The policy shipped in the repository.
pub const DEFAULT_POLICY_TOML: &str = include_str!("../../../policy/default.toml");

/// Which containment playbook handles the incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    Ec2,
    Iam,
    S3,
    Generic,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Route::Ec2 => "ec2",
            Route::Iam => "iam",
            Route::S3 => "s3",
            Route::Generic => "generic",
        })
    }
}

/// How much the system may do on its own. Ordered from least to most autonomous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Evidence and notification only; a human does any containment.
    Manual,
    /// Evidence and notification now; containment waits for an analyst's approval.
    Approval,
    /// Contain at once, then an analyst reviews (and may release).
    Auto,
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tier::Manual => "manual",
            Tier::Approval => "approval",
            Tier::Auto => "auto",
        })
    }
}

/// What triage does with the incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// Run the response for this incident.
    Respond,
    /// A suppression rule (or the finding's archived state) says this is known-good.
    Suppressed,
    /// The same incident is already being handled at an equal or stronger response.
    Duplicate,
}

impl fmt::Display for Disposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Disposition::Respond => "respond",
            Disposition::Suppressed => "suppressed",
            Disposition::Duplicate => "duplicate",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Tier when no rule matches.
    #[serde(default = "default_tier")]
    pub tier: Tier,
    /// Findings below this score (0–10) are `manual`: notify, never mutate.
    #[serde(default = "default_min_severity")]
    pub min_severity: f64,
    /// The most a resource that was the target (victim) of the activity may get.
    #[serde(default = "default_target_max_tier")]
    pub target_max_tier: Tier,
    /// The most a role may get when its containment revokes every session of the role (any
    /// session but an EC2 instance's, whose revocation is scoped to that instance): every user
    /// and workload of the role loses access at once.
    #[serde(default = "default_target_max_tier")]
    pub role_wide_revocation_max_tier: Tier,
}

fn default_tier() -> Tier {
    Tier::Approval
}
fn default_min_severity() -> f64 {
    7.0
}
fn default_target_max_tier() -> Tier {
    Tier::Approval
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            tier: default_tier(),
            min_severity: default_min_severity(),
            target_max_tier: default_target_max_tier(),
            role_wide_revocation_max_tier: default_target_max_tier(),
        }
    }
}

/// A tag that marks a resource as protected. Without `value`, any value matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagMatch {
    pub key: String,
    #[serde(default)]
    pub value: Option<String>,
}

impl TagMatch {
    pub fn matches(&self, key: &str, value: &str) -> bool {
        self.key == key
            && self
                .value
                .as_deref()
                .is_none_or(|v| v.eq_ignore_ascii_case(value))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dedupe {
    /// A repeat of an incident within this window is a duplicate (unless it escalates).
    #[serde(default = "default_window_hours")]
    pub window_hours: u32,
}

fn default_window_hours() -> u32 {
    24
}

impl Default for Dedupe {
    fn default() -> Self {
        Dedupe {
            window_hours: default_window_hours(),
        }
    }
}

/// A known-good pattern. Every criterion given must match; at least one must be given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suppression {
    pub name: String,
    pub reason: String,
    /// Glob patterns (`*`, `?`) over the GuardDuty-style finding type.
    #[serde(default)]
    pub finding_types: Vec<String>,
    /// Glob patterns over the principal: its name, `user/NAME`, `role/NAME`, or its access key id.
    #[serde(default)]
    pub principals: Vec<String>,
    /// CIDRs the remote IP must fall in.
    #[serde(default)]
    pub remote_cidrs: Vec<IpNet>,
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Organizational units (`ou-…` / root `r-…` ids, or glob patterns over them): the
    /// account is in one of them, at any depth.
    #[serde(default)]
    pub organizational_units: Vec<String>,
    /// Glob patterns over resource ids (`i-…`, `s3://bucket`, `user/NAME`, `role/NAME`).
    #[serde(default)]
    pub resources: Vec<String>,
    /// After this instant the suppression no longer applies.
    #[serde(default)]
    pub expires: Option<DateTime<Utc>>,
}

/// A tier rule. Every criterion given must match; an empty one matches anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    pub tier: Tier,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub finding_types: Vec<String>,
    #[serde(default)]
    pub min_severity: Option<f64>,
    #[serde(default)]
    pub resource_roles: Vec<ResourceRole>,
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Organizational units (`ou-…` / root `r-…` ids, or glob patterns over them): the
    /// account is in one of them, at any depth.
    #[serde(default)]
    pub organizational_units: Vec<String>,
}

/// The tier given to findings an analyst sends to a Security Hub custom action of this name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomActionRule {
    pub name: String,
    pub tier: Tier,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default = "default_protected_tags")]
    pub protected_tags: Vec<TagMatch>,
    #[serde(default)]
    pub dedupe: Dedupe,
    #[serde(default)]
    pub custom_actions: Vec<CustomActionRule>,
    #[serde(default)]
    pub suppressions: Vec<Suppression>,
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Glob patterns over the primary resource's id and ARN (`i-…`, `role/NAME`,
    /// `arn:aws:iam::*:role/prod-*`, `s3://bucket`): protected like a tagged resource (the
    /// response waits for an analyst). Unlike a tag, nobody with access to the resource can
    /// add or remove it.
    #[serde(default)]
    pub protected_resources: Vec<String>,
    /// Glob patterns (as `protected_resources`) for resources that are never changed, not even
    /// after an approval: the incident-response roles themselves, break-glass and administrator
    /// roles. `IR_NEVER_TOUCH` (comma-separated, set by Terraform to the IR roles) adds to it.
    #[serde(default)]
    pub never_touch: Vec<String>,
    /// Security Hub products whose findings may start a containment, as `company/product`
    /// from the ProductArn (`arn:…:securityhub:<region>::product/aws/guardduty`). Anyone allowed
    /// `securityhub:BatchImportFindings` can import a finding of their own product saying
    /// anything, so findings of any other product are notify-only (`manual`), and a trusted
    /// product not made by AWS (`aws/…`) gets at most `approval`. Custom actions are an analyst's
    /// choice and are not filtered. `IR_TRUSTED_PRODUCTS` (comma-separated, from Terraform's
    /// `trusted_securityhub_products`, which also filters the EventBridge rule) adds to it.
    #[serde(default = "default_trusted_products")]
    pub trusted_products: Vec<String>,
    /// Member accounts of the organization held back from automatic response.
    #[serde(default)]
    pub accounts: AccountScope,
}

/// Accounts (12-digit ids, or glob patterns over them) whose findings are answered more
/// cautiously than the rules say: a production payments account can be notify-only while the
/// response is trusted elsewhere, a newly enrolled account planned-only for its first weeks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountScope {
    /// Evidence and notification only (tier `manual`), whatever the rules say.
    #[serde(default)]
    pub notify_only: Vec<String>,
    /// Every containment step planned, none made (the decision's dry-run).
    #[serde(default)]
    pub dry_run: Vec<String>,
    /// As `notify_only`, for every account in these organizational units (at any depth).
    #[serde(default)]
    pub notify_only_organizational_units: Vec<String>,
    /// As `dry_run`, for every account in these organizational units (at any depth).
    #[serde(default)]
    pub dry_run_organizational_units: Vec<String>,
}

fn default_trusted_products() -> Vec<String> {
    vec!["aws/guardduty".into()]
}

/// `company/product` of a Security Hub ProductArn (`…:product/aws/guardduty`, or
/// `…:<account>:product/<account>/default` for an account's own imports).
pub fn product_of(product_arn: &str) -> Option<&str> {
    product_arn
        .rsplit_once(":product/")
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty())
}

fn default_protected_tags() -> Vec<TagMatch> {
    vec![TagMatch {
        key: "ir:protected".into(),
        value: Some("true".into()),
    }]
}

/// The first tag (`key=value`) that matches one of `protected`.
pub fn protected_tag<'a>(
    protected: &[TagMatch],
    tags: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Option<String> {
    tags.into_iter()
        .find(|(k, v)| protected.iter().any(|t| t.matches(k, v)))
        .map(|(k, v)| format!("{k}={v}"))
}

/// A policy plus the SHA-256 of its source text, recorded with every decision for audit.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedPolicy {
    pub policy: Policy,
    pub sha256: String,
    pub origin: String,
}

impl LoadedPolicy {
    /// Parses and validates policy TOML.
    pub fn from_toml(text: &str, origin: impl Into<String>) -> Result<LoadedPolicy, PolicyError> {
        let policy: Policy = toml::from_str(text).map_err(|e| PolicyError::Parse(e.to_string()))?;
        policy.validate()?;
        Ok(LoadedPolicy {
            policy,
            sha256: hex::encode(Sha256::digest(text.as_bytes())),
            origin: origin.into(),
        })
    }

    /// The repository's default policy.
    pub fn default_policy() -> Result<LoadedPolicy, PolicyError> {
        LoadedPolicy::from_toml(DEFAULT_POLICY_TOML, "policy/default.toml (built in)")
    }

    /// `IR_POLICY` (inline TOML) wins over `IR_POLICY_FILE` (a path); neither → the default.
    /// `IR_NEVER_TOUCH` (comma-separated globs) is added to `never_touch`.
    pub fn from_env() -> Result<LoadedPolicy, PolicyError> {
        let mut loaded = LoadedPolicy::from_env_source()?;
        if let Ok(extra) = std::env::var("IR_NEVER_TOUCH") {
            loaded.add_never_touch(&extra);
        }
        if let Ok(extra) = std::env::var("IR_TRUSTED_PRODUCTS") {
            loaded.add_trusted_products(&extra);
        }
        Ok(loaded)
    }

    /// Adds comma-separated `company/product` names to `trusted_products`.
    pub fn add_trusted_products(&mut self, csv: &str) {
        self.policy
            .trusted_products
            .extend(crate::config::csv_list(csv));
    }

    /// Adds comma-separated glob patterns to `never_touch`.
    pub fn add_never_touch(&mut self, csv: &str) {
        self.policy.never_touch.extend(crate::config::csv_list(csv));
    }

    fn from_env_source() -> Result<LoadedPolicy, PolicyError> {
        if let Ok(inline) = std::env::var("IR_POLICY") {
            if !inline.trim().is_empty() {
                return LoadedPolicy::from_toml(&inline, "IR_POLICY");
            }
        }
        if let Ok(path) = std::env::var("IR_POLICY_FILE") {
            if !path.trim().is_empty() {
                let text = std::fs::read_to_string(&path).map_err(|e| PolicyError::Read {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                return LoadedPolicy::from_toml(&text, path);
            }
        }
        LoadedPolicy::default_policy()
    }
}

impl Policy {
    fn validate(&self) -> Result<(), PolicyError> {
        let bad = |m: String| Err(PolicyError::Invalid(m));
        if !(0.0..=10.0).contains(&self.defaults.min_severity) {
            return bad(format!(
                "defaults.min_severity {} is outside 0–10",
                self.defaults.min_severity
            ));
        }
        if self.protected_tags.is_empty() {
            return bad("protected_tags must name at least one tag".into());
        }
        for s in &self.suppressions {
            if s.finding_types.is_empty()
                && s.principals.is_empty()
                && s.remote_cidrs.is_empty()
                && s.accounts.is_empty()
                && s.organizational_units.is_empty()
                && s.resources.is_empty()
            {
                return bad(format!(
                    "suppression `{}` has no criteria and would suppress everything",
                    s.name
                ));
            }
            if s.reason.trim().is_empty() {
                return bad(format!("suppression `{}` needs a reason", s.name));
            }
        }
        let ou_lists = self
            .suppressions
            .iter()
            .map(|s| (format!("suppression `{}`", s.name), &s.organizational_units))
            .chain(
                self.rules
                    .iter()
                    .map(|r| (format!("rule `{}`", r.name), &r.organizational_units)),
            )
            .chain([
                (
                    "accounts".to_string(),
                    &self.accounts.notify_only_organizational_units,
                ),
                (
                    "accounts".to_string(),
                    &self.accounts.dry_run_organizational_units,
                ),
            ]);
        for (owner, list) in ou_lists {
            if let Some(p) = list.iter().find(|p| !crate::orgunits::is_pattern(p)) {
                return bad(format!(
                    "{owner}: `{p}` is not an organizational unit id (`ou-…`) or root id (`r-…`)"
                ));
            }
        }
        for r in &self.rules {
            if let Some(m) = r.min_severity {
                if !(0.0..=10.0).contains(&m) {
                    return bad(format!(
                        "rule `{}` min_severity {m} is outside 0–10",
                        r.name
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The outcome of evaluating the policy for one incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyDecision {
    pub disposition: Disposition,
    pub route: Route,
    pub tier: Tier,
    /// A resource carries a protected tag.
    pub protected: bool,
    pub matched_rule: Option<String>,
    pub suppressed_by: Option<String>,
    /// Human-readable reasons, in the order they were applied.
    pub reasons: Vec<String>,
    /// The policy plans this response only (the account is in `accounts.dry_run`).
    #[serde(default)]
    pub dry_run: bool,
}

/// Route from the primary resource, which the parser chose from GuardDuty's `resourceType`
/// (or, for ASFF, the resource matching the finding type's affected-resource part).
pub fn route_for(incident: &Incident) -> Route {
    match incident.primary_resource() {
        Some(Resource::Ec2Instance { .. }) => Route::Ec2,
        Some(Resource::IamUser { .. } | Resource::IamRole { .. } | Resource::RootUser { .. }) => {
            Route::Iam
        }
        Some(Resource::S3Bucket { .. }) => Route::S3,
        Some(Resource::Other { .. }) | None => Route::Generic,
    }
}

fn glob_any(patterns: &[String], candidates: &[String]) -> bool {
    patterns.iter().any(|p| {
        let m = WildMatch::new(p);
        candidates.iter().any(|c| m.matches(c))
    })
}

/// The id and ARN forms of the incident's primary resource, for `protected_resources` and
/// `never_touch`.
fn primary_names(incident: &Incident) -> Vec<String> {
    let Some(r) = incident.primary_resource() else {
        return Vec::new();
    };
    let (p, account, region) = (&incident.partition, &incident.account_id, &incident.region);
    let arn = match r {
        Resource::Ec2Instance { instance_id, .. } => Some(format!(
            "arn:{p}:ec2:{region}:{account}:instance/{instance_id}"
        )),
        Resource::IamUser { user_name, .. } => {
            Some(format!("arn:{p}:iam::{account}:user/{user_name}"))
        }
        Resource::IamRole { role_name, .. } => {
            Some(format!("arn:{p}:iam::{account}:role/{role_name}"))
        }
        Resource::RootUser { .. } => Some(format!("arn:{p}:iam::{account}:root")),
        Resource::S3Bucket { bucket_name, .. } => Some(format!("arn:{p}:s3:::{bucket_name}")),
        Resource::Other { .. } => None,
    };
    std::iter::once(r.display_id()).chain(arn).collect()
}

/// The first of `patterns` that matches one of `names`.
///
/// The names carry no IAM path (findings do not give one), so a pattern with a path — an IAM
/// Identity Center role `…:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_*` — is also tried
/// without it.
fn first_match<'a>(patterns: &'a [String], names: &[String]) -> Option<&'a String> {
    patterns.iter().find(|p| {
        let plain = without_iam_path(p);
        [WildMatch::new(p), WildMatch::new(&plain)]
            .iter()
            .any(|m| names.iter().any(|n| m.matches(n)))
    })
}

/// `arn:…:role/a/b/name` → `arn:…:role/name` (users likewise); anything else unchanged.
fn without_iam_path(pattern: &str) -> String {
    for kind in [":role/", ":user/"] {
        if let Some((head, rest)) = pattern.split_once(kind) {
            let name = rest.rsplit('/').next().unwrap_or(rest);
            return format!("{head}{kind}{name}");
        }
    }
    pattern.to_string()
}

/// Names a suppression's `principals` patterns are matched against.
fn principal_names(incident: &Incident) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(p) = &incident.principal {
        names.extend(p.name.clone());
        names.extend(p.access_key_id.clone());
    }
    for r in &incident.resources {
        match r {
            Resource::IamUser {
                user_name,
                access_key_id,
            } => {
                names.push(user_name.clone());
                names.push(format!("user/{user_name}"));
                names.extend(access_key_id.clone());
            }
            Resource::IamRole {
                role_name,
                access_key_id,
                ..
            } => {
                names.push(role_name.clone());
                names.push(format!("role/{role_name}"));
                names.extend(access_key_id.clone());
            }
            _ => {}
        }
    }
    names
}

impl Suppression {
    fn matches(&self, incident: &Incident, org: &OrgPath, now: DateTime<Utc>) -> bool {
        if self.expires.is_some_and(|e| e <= now) {
            return false;
        }
        let types = [incident.finding_type.clone()];
        let resources: Vec<String> = incident
            .resources
            .iter()
            .map(Resource::display_id)
            .collect();
        (self.finding_types.is_empty() || glob_any(&self.finding_types, &types))
            && (self.principals.is_empty()
                || glob_any(&self.principals, &principal_names(incident)))
            && (self.remote_cidrs.is_empty()
                || incident
                    .remote
                    .as_ref()
                    .and_then(|r| r.ip)
                    .is_some_and(|ip| self.remote_cidrs.iter().any(|c| c.contains(&ip))))
            && (self.accounts.is_empty() || self.accounts.contains(&incident.account_id))
            && (self.organizational_units.is_empty()
                || first_in(&self.organizational_units, org).is_some())
            && (self.resources.is_empty() || glob_any(&self.resources, &resources))
    }
}

impl Rule {
    fn matches(&self, incident: &Incident, route: Route, org: &OrgPath) -> bool {
        (self.routes.is_empty() || self.routes.contains(&route))
            && (self.finding_types.is_empty()
                || glob_any(
                    &self.finding_types,
                    std::slice::from_ref(&incident.finding_type),
                ))
            && self
                .min_severity
                .is_none_or(|m| incident.severity.score >= m)
            && (self.resource_roles.is_empty()
                || incident
                    .resource_role
                    .is_some_and(|r| self.resource_roles.contains(&r)))
            && (self.accounts.is_empty() || self.accounts.contains(&incident.account_id))
            && (self.organizational_units.is_empty()
                || first_in(&self.organizational_units, org).is_some())
    }
}

impl Policy {
    /// Whether any rule, suppression or account scope names organizational units (then triage
    /// reads where the account sits, and [`Policy::evaluate_in`] needs it).
    pub fn uses_organizational_units(&self) -> bool {
        !self.accounts.notify_only_organizational_units.is_empty()
            || !self.accounts.dry_run_organizational_units.is_empty()
            || self
                .rules
                .iter()
                .any(|r| !r.organizational_units.is_empty())
            || self
                .suppressions
                .iter()
                .any(|s| !s.organizational_units.is_empty())
    }

    /// Evaluates the policy for one incident at `now`, where the account's place in the
    /// organization is not known (see [`Policy::evaluate_in`]).
    pub fn evaluate(&self, incident: &Incident, now: DateTime<Utc>) -> PolicyDecision {
        self.evaluate_in(incident, &OrgPath::Unknown("not looked up".into()), now)
    }

    /// Evaluates the policy for one incident at `now`, with the account's ancestors in the
    /// organization. When the policy names organizational units and they are unknown, no OU
    /// criterion matches and the response is notify-only: a rule that holds production back
    /// must not be skipped because the lookup failed.
    pub fn evaluate_in(
        &self,
        incident: &Incident,
        org: &OrgPath,
        now: DateTime<Utc>,
    ) -> PolicyDecision {
        let route = route_for(incident);
        let mut reasons = Vec::new();
        if let (true, OrgPath::Known(ids)) = (self.uses_organizational_units(), org) {
            reasons.push(format!(
                "account {} is in {}",
                incident.account_id,
                ids.join(" / ")
            ));
        }
        let names = primary_names(incident);
        let protected_tag =
            protected_tag(&self.protected_tags, incident.resource_tags()).or_else(|| {
                first_match(&self.protected_resources, &names)
                    .map(|p| format!("protected_resources `{p}`"))
            });

        if incident.archived {
            return PolicyDecision {
                disposition: Disposition::Suppressed,
                route,
                tier: Tier::Manual,
                protected: protected_tag.is_some(),
                matched_rule: None,
                suppressed_by: Some("archived".into()),
                reasons: vec!["finding is archived at its source".into()],
                dry_run: false,
            };
        }
        if let Some(s) = self
            .suppressions
            .iter()
            .find(|s| s.matches(incident, org, now))
        {
            return PolicyDecision {
                disposition: Disposition::Suppressed,
                route,
                tier: Tier::Manual,
                protected: protected_tag.is_some(),
                matched_rule: None,
                suppressed_by: Some(s.name.clone()),
                reasons: vec![format!("suppressed by `{}`: {}", s.name, s.reason)],
                dry_run: false,
            };
        }

        let mut matched_rule = None;
        let custom = incident
            .custom_action
            .as_ref()
            .and_then(|a| self.custom_actions.iter().find(|c| c.name == a.name));
        let mut tier = if let Some(c) = custom {
            reasons.push(format!(
                "analyst sent the finding to custom action `{}`",
                c.name
            ));
            c.tier
        } else if let Some(rule) = self.rules.iter().find(|r| r.matches(incident, route, org)) {
            matched_rule = Some(rule.name.clone());
            reasons.push(format!("rule `{}`", rule.name));
            rule.tier
        } else if incident.severity.score < self.defaults.min_severity {
            reasons.push(format!(
                "severity {:.1} is below the response threshold {:.1}",
                incident.severity.score, self.defaults.min_severity
            ));
            Tier::Manual
        } else {
            reasons.push("no rule matched: default tier".into());
            self.defaults.tier
        };

        // Safety caps: these only ever lower the tier.
        let mut cap = |max: Tier, why: String, tier: &mut Tier| {
            if *tier > max {
                reasons.push(format!("capped at {max}: {why}"));
                *tier = max;
            }
        };
        if let Some(tag) = &protected_tag {
            // Escalated, not skipped: a tag is writable by whoever controls the resource, so it
            // can only bring a human in, never opt the resource out of a response.
            cap(
                Tier::Approval,
                format!("resource is protected ({tag}): an analyst must approve"),
                &mut tier,
            );
        }
        if incident.custom_action.is_none() {
            match incident.product_arn.as_deref().and_then(product_of) {
                Some(product) if !self.trusted_products.iter().any(|t| t == product) => cap(
                    Tier::Manual,
                    format!("product `{product}` is not in trusted_products: notify only"),
                    &mut tier,
                ),
                Some(product) if !product.starts_with("aws/") => cap(
                    Tier::Approval,
                    format!("`{product}` is not an AWS detector"),
                    &mut tier,
                ),
                Some(_) => {}
                None => cap(
                    Tier::Manual,
                    "the finding names no product: notify only".into(),
                    &mut tier,
                ),
            }
        }
        if let Some(p) = first_match(&self.never_touch, &names) {
            cap(
                Tier::Manual,
                format!("never changed: matches never_touch `{p}`"),
                &mut tier,
            );
        }
        match incident.primary_resource() {
            Some(Resource::RootUser { .. }) => cap(
                Tier::Manual,
                "the root user is never changed automatically".into(),
                &mut tier,
            ),
            Some(Resource::IamRole { role_name, .. })
                if role_name.starts_with("AWSServiceRoleFor") =>
            {
                cap(
                    Tier::Manual,
                    format!("`{role_name}` is a service-linked role"),
                    &mut tier,
                )
            }
            Some(Resource::IamRole {
                role_name,
                session_name,
                ..
            }) if session_name
                .as_deref()
                .and_then(crate::actions::instance_session)
                .is_none() =>
            {
                cap(
                    self.defaults.role_wide_revocation_max_tier,
                    format!("quarantine revokes every session of role `{role_name}`, not only the finding's"),
                    &mut tier,
                )
            }
            _ => {}
        }
        if route == Route::Generic {
            let why = match incident.primary_resource() {
                Some(r) => format!("no containment playbook for {}", r.display_id()),
                None if incident.finding_type.starts_with("AttackSequence:") => {
                    "attack sequence without its signals' resources \
                     (`service.detection.sequence`): nothing named to contain"
                        .into()
                }
                None => "no containment playbook for unknown resource".into(),
            };
            cap(Tier::Manual, why, &mut tier);
        }
        if incident.resource_role == Some(ResourceRole::Target) {
            cap(
                self.defaults.target_max_tier,
                "the resource was the target of the activity, not its actor".into(),
                &mut tier,
            );
        }
        let account = [incident.account_id.clone()];
        if let Some(p) = first_match(&self.accounts.notify_only, &account) {
            cap(
                Tier::Manual,
                format!(
                    "account {} is notify-only (accounts.notify_only `{p}`)",
                    incident.account_id
                ),
                &mut tier,
            );
        }
        if let Some(p) = first_in(&self.accounts.notify_only_organizational_units, org) {
            cap(
                Tier::Manual,
                format!(
                    "account {} is in organizational unit `{p}` (accounts.notify_only_organizational_units)",
                    incident.account_id
                ),
                &mut tier,
            );
        }
        if let (true, OrgPath::Unknown(why)) = (self.uses_organizational_units(), org) {
            cap(
                Tier::Manual,
                format!(
                    "the policy names organizational units and those of account {} are unknown ({why}): notify only",
                    incident.account_id
                ),
                &mut tier,
            );
        }
        let dry_run = first_match(&self.accounts.dry_run, &account)
            .map(|p| format!("accounts.dry_run (`{p}`)"))
            .or_else(|| {
                first_in(&self.accounts.dry_run_organizational_units, org).map(|p| {
                    format!("organizational unit `{p}` (accounts.dry_run_organizational_units)")
                })
            })
            .map(|why| {
                reasons.push(format!(
                    "dry-run: account {} is in {why}",
                    incident.account_id
                ));
            });

        PolicyDecision {
            disposition: Disposition::Respond,
            route,
            tier,
            protected: protected_tag.is_some(),
            matched_rule,
            suppressed_by: None,
            reasons,
            dry_run: dry_run.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_loads_and_has_a_stable_hash() {
        let a = LoadedPolicy::default_policy().expect("default policy is valid");
        let b = LoadedPolicy::default_policy().expect("default policy is valid");
        assert_eq!(a.sha256, b.sha256);
        assert_eq!(a.sha256.len(), 64);
        assert!(a
            .policy
            .protected_tags
            .iter()
            .any(|t| t.matches("ir:protected", "true")));
    }

    #[test]
    fn rejects_a_suppression_without_criteria() {
        let err = LoadedPolicy::from_toml(
            "[[suppressions]]\nname = \"all\"\nreason = \"oops\"\n",
            "test",
        )
        .expect_err("must be rejected");
        assert!(matches!(err, PolicyError::Invalid(m) if m.contains("no criteria")));
    }

    #[test]
    fn rejects_unknown_keys_and_bad_tiers() {
        assert!(matches!(
            LoadedPolicy::from_toml("[defaults]\ntier = \"yolo\"\n", "t"),
            Err(PolicyError::Parse(_))
        ));
        assert!(matches!(
            LoadedPolicy::from_toml("[defaults]\ntierr = \"auto\"\n", "t"),
            Err(PolicyError::Parse(_))
        ));
        assert!(matches!(
            LoadedPolicy::from_toml("[defaults]\nmin_severity = 11.0\n", "t"),
            Err(PolicyError::Invalid(_))
        ));
    }

    #[test]
    fn tier_order_is_least_to_most_autonomous() {
        assert!(Tier::Manual < Tier::Approval && Tier::Approval < Tier::Auto);
    }
}
