//! Secrets (webhook URLs, API tokens, signing keys) from AWS Secrets Manager or SSM Parameter
//! Store. Configuration names *where* a secret lives, never the secret itself:
//!
//! - `secretsmanager:<secret id or ARN>` — `GetSecretValue` (`SecretString`);
//! - `ssm:<parameter name>` — `GetParameter` with decryption (a `SecureString`).
//!
//! A value is fetched once per container and cached. [`Secret`] never prints its value
//! (`Debug`/`Display` show `***`), so a secret cannot reach a log line by accident.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::error::ConfigError;
use crate::permissions::{resource, Permission};

/// What [`SecretStore::get`] needs: the configured SSM parameters and Secrets Manager secrets.
pub const PERMISSIONS: &[Permission] = &[
    Permission::new("ssm:GetParameter", resource::SSM_SECRETS),
    Permission::new(
        "secretsmanager:GetSecretValue",
        resource::SECRETS_MANAGER_SECRETS,
    ),
];

/// A secret value. Read it with [`Secret::expose`] at the point of use only.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(Arc::from(value.into()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where a secret lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SecretRef {
    SecretsManager(String),
    Ssm(String),
}

impl SecretRef {
    /// Parses `secretsmanager:<id>` or `ssm:<name>`; `setting` names the variable in errors.
    pub fn parse(setting: &'static str, value: &str) -> Result<SecretRef, ConfigError> {
        let invalid = |message: &str| ConfigError::Invalid {
            name: setting,
            value: value.to_string(),
            message: message.to_string(),
        };
        let (kind, id) = value
            .trim()
            .split_once(':')
            .ok_or_else(|| invalid("expected secretsmanager:<id> or ssm:<parameter>"))?;
        if id.trim().is_empty() {
            return Err(invalid("the secret id is empty"));
        }
        match kind {
            "secretsmanager" => Ok(SecretRef::SecretsManager(id.to_string())),
            "ssm" => Ok(SecretRef::Ssm(id.to_string())),
            _ => Err(invalid("expected secretsmanager:<id> or ssm:<parameter>")),
        }
    }

    /// The optional secret reference in environment variable `name`.
    pub fn from_env(name: &'static str) -> Result<Option<SecretRef>, ConfigError> {
        match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => SecretRef::parse(name, &v).map(Some),
            _ => Ok(None),
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::SecretsManager(id) => write!(f, "secretsmanager:{id}"),
            SecretRef::Ssm(name) => write!(f, "ssm:{name}"),
        }
    }
}

/// A secret could not be read. The message names the reference, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("secret {reference} is unavailable: {message}")]
pub struct SecretError {
    pub reference: String,
    pub message: String,
}

/// Fetches and caches secrets.
#[derive(Debug, Clone)]
pub struct SecretStore {
    secretsmanager: aws_sdk_secretsmanager::Client,
    ssm: aws_sdk_ssm::Client,
    cache: Arc<Mutex<HashMap<SecretRef, Secret>>>,
}

impl SecretStore {
    pub fn new(secretsmanager: aws_sdk_secretsmanager::Client, ssm: aws_sdk_ssm::Client) -> Self {
        SecretStore {
            secretsmanager,
            ssm,
            cache: Arc::default(),
        }
    }

    pub async fn get(&self, reference: &SecretRef) -> Result<Secret, SecretError> {
        if let Some(hit) = self.cache.lock().await.get(reference) {
            return Ok(hit.clone());
        }
        let fail = |message: String| SecretError {
            reference: reference.to_string(),
            message,
        };
        let value = match reference {
            SecretRef::SecretsManager(id) => self
                .secretsmanager
                .get_secret_value()
                .secret_id(id)
                .send()
                .await
                .map_err(|e| {
                    fail(aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string())
                })?
                .secret_string
                .ok_or_else(|| fail("the secret has no SecretString".into()))?,
            SecretRef::Ssm(name) => self
                .ssm
                .get_parameter()
                .name(name)
                .with_decryption(true)
                .send()
                .await
                .map_err(|e| fail(aws_sdk_ssm::error::DisplayErrorContext(e).to_string()))?
                .parameter
                .and_then(|p| p.value)
                .ok_or_else(|| fail("the parameter has no value".into()))?,
        };
        if value.trim().is_empty() {
            return Err(fail("the value is empty".into()));
        }
        let secret = Secret::new(value.trim());
        self.cache
            .lock()
            .await
            .insert(reference.clone(), secret.clone());
        Ok(secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        assert_eq!(
            SecretRef::parse("X", "ssm:/ir/slack"),
            Ok(SecretRef::Ssm("/ir/slack".into()))
        );
        assert_eq!(
            SecretRef::parse(
                "X",
                "secretsmanager:arn:aws:secretsmanager:us-east-1:1:secret:a"
            ),
            Ok(SecretRef::SecretsManager(
                "arn:aws:secretsmanager:us-east-1:1:secret:a".into()
            ))
        );
        assert!(SecretRef::parse("X", "https://hooks.slack.com/x").is_err());
        assert!(SecretRef::parse("X", "ssm:").is_err());
    }

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new("xoxb-very-secret");
        assert_eq!(format!("{s} {s:?}"), "*** Secret(***)");
    }
}
