//! `IsolateConfig`: the function's settings from the environment.

use ir_core::ConfigError;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct IsolateConfig {
    /// `IR_FORENSIC_INGRESS_CIDR`: lets responders reach the instance on TCP 22.
    pub forensic_ingress_cidr: Option<ipnet::IpNet>,
    /// `IR_NACL_ISOLATION`: also deny the instance's addresses in every network ACL of its VPC
    /// (cuts flows through NAT gateways, load balancers and endpoints in other subnets).
    pub nacl_isolation: bool,
}

impl IsolateConfig {
    pub fn from_env() -> Result<IsolateConfig, ConfigError> {
        let cidr = match std::env::var("IR_FORENSIC_INGRESS_CIDR") {
            Ok(v) if !v.trim().is_empty() => Some(v.trim().parse().map_err(
                |e: ipnet::AddrParseError| ConfigError::Invalid {
                    name: "IR_FORENSIC_INGRESS_CIDR",
                    value: v.clone(),
                    message: e.to_string(),
                },
            )?),
            _ => None,
        };
        Ok(IsolateConfig {
            forensic_ingress_cidr: cidr,
            nacl_isolation: ir_core::config::env_bool_strict("IR_NACL_ISOLATION")?.unwrap_or(false),
        })
    }
}
