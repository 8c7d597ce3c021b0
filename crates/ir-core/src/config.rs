//! Reading typed settings from the environment.

use crate::error::ConfigError;

/// The non-empty, trimmed items of a comma-separated list (`a, b,,c` → `a`, `b`, `c`).
pub fn csv_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(String::from)
        .collect()
}

/// A required setting.
pub fn env_required(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError::Missing(name)),
    }
}

/// An optional setting with a default.
pub fn env_or(name: &'static str, default: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v,
        _ => default.to_string(),
    }
}

/// Parses a boolean: true/false, yes/no, on/off, 1/0. `None` when unset.
pub fn parse_bool(name: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" | "" => Ok(false),
        _ => Err(ConfigError::Invalid {
            name,
            value: value.to_string(),
            message: "expected true or false".into(),
        }),
    }
}

/// A boolean setting; `None` when unset, `Err` when set to something that is not a boolean.
pub fn env_bool_strict(name: &'static str) -> Result<Option<bool>, ConfigError> {
    match std::env::var(name) {
        Ok(v) => parse_bool(name, &v).map(Some),
        Err(_) => Ok(None),
    }
}

/// A boolean setting where an unparsable value counts as unset.
pub fn env_bool(name: &'static str) -> Option<bool> {
    env_bool_strict(name).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans() {
        assert_eq!(parse_bool("X", "TRUE"), Ok(true));
        assert_eq!(parse_bool("X", "off"), Ok(false));
        assert!(parse_bool("X", "perhaps").is_err());
    }
}
