//! Domain crate for automated AWS incident response: parse findings into incidents, decide the
//! response with policy-as-code, and record every action for audit.
//!
//! - [`finding`]: wire types for GuardDuty and Security Hub (ASFF) EventBridge events;
//! - [`incident`]: the normalised [`incident::Incident`];
//! - [`policy`]: routes, tiers, suppressions, protected tags and safety caps;
//! - [`decision`]: the triage output the state machine routes on;
//! - [`killswitch`]: the SSM kill switch that forces dry-run;
//! - [`audit`]: step records for the audit trail;
//! - [`aws`], [`config`], [`telemetry`]: shared wiring for the Lambda binaries.

pub mod actions;
pub mod audit;
pub mod aws;
pub mod config;
pub mod decision;
pub mod error;
pub mod finding;
pub mod gate;
pub mod incident;
pub mod killswitch;
pub mod lease;
pub mod member;
pub mod orgunits;
pub mod permissions;
pub mod playbook;
pub mod policy;
pub mod prestate;
pub mod secrets;
pub mod sfn;
pub mod telemetry;
pub mod timestamps;

pub use decision::{TriageDecision, TriageOutput};
pub use error::{ConfigError, FindingError, PolicyError};
pub use incident::Incident;
pub use policy::{Disposition, LoadedPolicy, Policy, Route, Tier};
