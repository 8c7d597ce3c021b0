//! Where a containment playbook keeps the state it found before changing anything: a DynamoDB
//! table the IR functions alone write (`IR_PRE_STATE_TABLE`), never a tag on the resource.
//!
//! Tags are the wrong place: IAM and S3 refuse JSON in tag values, a tag value holds 256
//! characters, and anyone who can tag the resource (often the attacker) could plant a "pre-state"
//! that decides what a release restores.
//!
//! One item per resource, keyed `<account>/<region>/<resource>` (`global` for IAM and S3). The
//! first response writes it with a condition (`attribute_not_exists` or `released`), so a later
//! or concurrent response for the same resource never overwrites the original state: it reads
//! the first one back and works from that. A release marks the item `released`; the next
//! containment of the resource then records afresh.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::actions::{Runner, StepFailed};
use crate::audit::Outcome;
use crate::permissions::{resource, Permission};

pub const GET: Permission = Permission::new("dynamodb:GetItem", resource::PRE_STATE_TABLE);
pub const PUT: Permission = Permission::new("dynamodb:PutItem", resource::PRE_STATE_TABLE);
pub const UPDATE: Permission = Permission::new("dynamodb:UpdateItem", resource::PRE_STATE_TABLE);
/// What a playbook that records and releases pre-state needs.
pub const PERMISSIONS: &[Permission] = &[GET, PUT, UPDATE];

const HELD: &str = "held";
const RELEASED: &str = "released";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreStateError {
    #[error("pre-state table unavailable ({code}): {message}")]
    Unavailable { code: String, message: String },
    #[error("stored pre-state for {key} is unreadable: {message}")]
    Corrupt { key: String, message: String },
}

pub(crate) fn unavailable<E>(e: aws_sdk_dynamodb::error::SdkError<E>) -> PreStateError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    PreStateError::Unavailable {
        code: e.code().unwrap_or("unknown").to_string(),
        message: aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string(),
    }
}

/// The item key of one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreStateKey(String);

impl PreStateKey {
    /// `region` is `global` for global resources (IAM principals, S3 bucket names).
    pub fn new(account: &str, region: &str, resource: &str) -> PreStateKey {
        PreStateKey(format!("{account}/{region}/{resource}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A stored pre-state.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub incident_id: String,
    pub function: String,
    pub state: serde_json::Value,
    pub released: bool,
    pub recorded_at: String,
}

/// Prefix of the attributes [`PreStateStore::extend`] writes: `more_<field>`, a string set
/// merged into the state's list `<field>` when the record is read. (`PutItem` of a new record
/// replaces the item, so a released record's extensions do not carry over.)
const EXTENSION: &str = "more_";

/// Adds each `more_<field>` string set of `item` to the list `<field>` of `state` (each value
/// once).
fn merge_extensions(
    state: &mut serde_json::Value,
    item: &HashMap<String, AttributeValue>,
) -> Result<(), String> {
    for (name, value) in item {
        let (Some(field), Ok(values)) = (name.strip_prefix(EXTENSION), value.as_ss()) else {
            continue;
        };
        let list = state
            .as_object_mut()
            .ok_or("the state is not an object")?
            .entry(field)
            .or_insert_with(|| serde_json::Value::Array(Vec::new()))
            .as_array_mut()
            .ok_or_else(|| format!("`{field}` is not a list"))?;
        for v in values {
            let v = serde_json::Value::String(v.clone());
            if !list.contains(&v) {
                list.push(v);
            }
        }
    }
    Ok(())
}

/// A conditional `UpdateItem`'s answer: `Ok(true)` applied, `Ok(false)` its condition failed.
fn updated<O>(
    out: Result<O, aws_sdk_dynamodb::error::SdkError<UpdateItemError>>,
) -> Result<bool, PreStateError> {
    match out {
        Ok(_) => Ok(true),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(UpdateItemError::ConditionalCheckFailedException(_))
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(unavailable(e)),
    }
}

/// The pre-state table.
#[derive(Debug, Clone)]
pub struct PreStateStore {
    pub(crate) ddb: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

impl PreStateStore {
    pub fn new(ddb: aws_sdk_dynamodb::Client, table: impl Into<String>) -> PreStateStore {
        PreStateStore {
            ddb,
            table: table.into(),
        }
    }

    /// The table named by `IR_PRE_STATE_TABLE` (required).
    pub fn from_env(ddb: aws_sdk_dynamodb::Client) -> Result<PreStateStore, crate::ConfigError> {
        Ok(PreStateStore::new(
            ddb,
            crate::config::env_required("IR_PRE_STATE_TABLE")?,
        ))
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The item for `key` (strongly consistent), if any.
    pub async fn get(&self, key: &PreStateKey) -> Result<Option<Stored>, PreStateError> {
        let out = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .key("resource", AttributeValue::S(key.0.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        let corrupt = |message: String| PreStateError::Corrupt {
            key: key.0.clone(),
            message,
        };
        let mut state: serde_json::Value =
            serde_json::from_str(&text(item, "state")).map_err(|e| corrupt(e.to_string()))?;
        merge_extensions(&mut state, item).map_err(corrupt)?;
        Ok(Some(Stored {
            incident_id: text(item, "incident_id"),
            function: text(item, "function"),
            state,
            released: text(item, "status") == RELEASED,
            recorded_at: text(item, "recorded_at"),
        }))
    }

    /// Writes `state` unless an unreleased record exists. `Ok(None)`: written now;
    /// `Ok(Some(stored))`: an earlier response's record, left as it was.
    pub async fn put_first(
        &self,
        key: &PreStateKey,
        incident_id: &str,
        function: &str,
        state: &serde_json::Value,
    ) -> Result<Option<Stored>, PreStateError> {
        let put = self
            .ddb
            .put_item()
            .table_name(&self.table)
            .item("resource", AttributeValue::S(key.0.clone()))
            .item("incident_id", AttributeValue::S(incident_id.into()))
            .item("function", AttributeValue::S(function.into()))
            .item("state", AttributeValue::S(state.to_string()))
            .item("status", AttributeValue::S(HELD.into()))
            .item("recorded_at", AttributeValue::S(Utc::now().to_rfc3339()))
            .condition_expression("attribute_not_exists(#r) OR #s = :released")
            .expression_attribute_names("#r", "resource")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":released", AttributeValue::S(RELEASED.into()))
            .send()
            .await;
        match put {
            Ok(_) => Ok(None),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                self.get(key).await
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Adds `values` to the list `field` of the held record's state, for a playbook that finds,
    /// after the record was written, more of the original state than it holds (a role an
    /// instance came to hold since): written before the change that needs it, so a retry or a
    /// release that reads the record back knows it. A string-set `ADD`, so repeats and
    /// concurrent extensions add each value once. `Ok(false)`: no held record (nothing written).
    pub async fn extend(
        &self,
        key: &PreStateKey,
        field: &str,
        values: &[String],
    ) -> Result<bool, PreStateError> {
        let mut values = values.to_vec();
        values.sort();
        values.dedup(); // DynamoDB refuses a set with duplicates
        if values.is_empty() {
            return Ok(true); // and an empty one
        }
        let out = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key("resource", AttributeValue::S(key.0.clone()))
            .update_expression("ADD #m :v")
            .condition_expression("#s = :held")
            .expression_attribute_names("#m", format!("{EXTENSION}{field}"))
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":v", AttributeValue::Ss(values))
            .expression_attribute_values(":held", AttributeValue::S(HELD.into()))
            .send()
            .await;
        updated(out)
    }

    /// Marks the record released (the resource is back to its pre-state). `Ok(false)`: there was
    /// no record.
    pub async fn release(
        &self,
        key: &PreStateKey,
        incident_id: &str,
    ) -> Result<bool, PreStateError> {
        let out = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key("resource", AttributeValue::S(key.0.clone()))
            .update_expression("SET #s = :released, released_by = :inc, released_at = :at")
            .condition_expression("attribute_exists(#r)")
            .expression_attribute_names("#r", "resource")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":released", AttributeValue::S(RELEASED.into()))
            .expression_attribute_values(":inc", AttributeValue::S(incident_id.into()))
            .expression_attribute_values(":at", AttributeValue::S(Utc::now().to_rfc3339()))
            .send()
            .await;
        updated(out)
    }

    /// Step `record-pre-state`, before any change: records `observed` as the original state
    /// unless an earlier response already did, and returns the original (the stored one wins).
    /// In dry-run nothing is written; the plan shows what would be.
    pub async fn record_step<T: Serialize + DeserializeOwned>(
        &self,
        runner: &mut Runner,
        key: &PreStateKey,
        observed: T,
    ) -> Result<T, StepFailed> {
        const STEP: &str = "record-pre-state";
        let incident_id = runner.trail.incident_id.clone();
        let function = runner.trail.function.clone();
        let fail = |runner: &mut Runner, message: String| {
            runner.trail.record(
                STEP,
                Some(PUT.action),
                Some(key.as_str()),
                Outcome::Failed,
                Some(message.clone()),
            );
            StepFailed {
                step: STEP.into(),
                message,
            }
        };
        let value = serde_json::to_value(&observed).map_err(|e| fail(runner, e.to_string()))?;
        if runner.dry_run {
            let stored = self
                .get(key)
                .await
                .map_err(|e| fail(runner, e.to_string()))?;
            let (state, detail) = match stored.filter(|s| !s.released) {
                Some(s) => (
                    s.state,
                    format!("keep the pre-state recorded by {}", s.incident_id),
                ),
                None => (value, format!("record the pre-state in {}", self.table)),
            };
            runner.trail.record(
                STEP,
                Some(PUT.action),
                Some(key.as_str()),
                Outcome::DryRun,
                Some(detail),
            );
            return serde_json::from_value(state).map_err(|e| fail(runner, e.to_string()));
        }
        match self.put_first(key, &incident_id, &function, &value).await {
            Ok(None) => {
                runner.trail.record(
                    STEP,
                    Some(PUT.action),
                    Some(key.as_str()),
                    Outcome::Succeeded,
                    Some(format!("recorded in {}", self.table)),
                );
                Ok(observed)
            }
            Ok(Some(stored)) => {
                runner.trail.record(
                    STEP,
                    Some(PUT.action),
                    Some(key.as_str()),
                    Outcome::AlreadyDone,
                    Some(format!(
                        "original state recorded by {} at {}; kept",
                        stored.incident_id, stored.recorded_at
                    )),
                );
                serde_json::from_value(stored.state).map_err(|e| fail(runner, e.to_string()))
            }
            Err(e) => Err(fail(runner, e.to_string())),
        }
    }

    /// The state a release restores: the stored original while it is held, else the record of
    /// the `contain` run the state machine passes, else `observed` (nothing to restore).
    pub async fn for_release<T: DeserializeOwned>(
        &self,
        key: &PreStateKey,
        previous: Option<&serde_json::Value>,
        observed: T,
    ) -> Result<T, PreStateError> {
        let corrupt = |e: serde_json::Error| PreStateError::Corrupt {
            key: key.0.clone(),
            message: e.to_string(),
        };
        if let Some(stored) = self.get(key).await?.filter(|s| !s.released) {
            return serde_json::from_value(stored.state).map_err(corrupt);
        }
        match previous.filter(|v| !v.is_null()) {
            Some(v) => serde_json::from_value(v.clone()).map_err(corrupt),
            None => Ok(observed),
        }
    }

    /// Step `release-pre-state`, after the restore: the record is marked released.
    pub async fn release_step(
        &self,
        runner: &mut Runner,
        key: &PreStateKey,
    ) -> Result<(), StepFailed> {
        let incident_id = runner.trail.incident_id.clone();
        runner
            .step(
                "release-pre-state",
                &UPDATE,
                key.as_str(),
                format!("mark the pre-state in {} released", self.table),
                || async {
                    match self.release(key, &incident_id).await {
                        Ok(true) => Ok(crate::actions::StepResult::Changed("released".into())),
                        Ok(false) => Ok(crate::actions::StepResult::AlreadyDone(
                            "no pre-state recorded".into(),
                        )),
                        Err(e) => Err(e.to_string()),
                    }
                },
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(extra: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
        extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn extensions_join_their_list_once_each() {
        let mut state = serde_json::json!({"role_names": ["a"], "other": 1});
        let ss = |v: &[&str]| AttributeValue::Ss(v.iter().map(|s| s.to_string()).collect());
        let item = item(&[
            ("more_role_names", ss(&["a", "b"])),
            ("more_new", ss(&["c"])),
            ("status", AttributeValue::S("held".into())),
        ]);
        merge_extensions(&mut state, &item).expect("merged");
        assert_eq!(
            state,
            serde_json::json!({"role_names": ["a", "b"], "new": ["c"], "other": 1})
        );
    }

    #[test]
    fn an_extension_of_what_is_not_a_list_is_corrupt() {
        let mut state = serde_json::json!({"other": 1});
        let item = item(&[("more_other", AttributeValue::Ss(vec!["x".into()]))]);
        assert_eq!(
            merge_extensions(&mut state, &item),
            Err("`other` is not a list".to_string())
        );
    }
}
