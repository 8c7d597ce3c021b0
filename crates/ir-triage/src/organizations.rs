//! Where a finding's account sits in the AWS Organization, for policies that name
//! organizational units: `organizations:ListParents` from the account up to the root, kept per
//! account for the life of the container (at most [`KEEP`]).
//!
//! Only the management account or a delegated administrator may read the tree; anywhere else
//! the lookup fails, the place is unknown and the policy holds the response to notify-only
//! ([`ir_core::Policy::evaluate_in`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_organizations::error::ProvideErrorMetadata;
use aws_sdk_organizations::types::ParentType;
use ir_core::orgunits::OrgPath;
use ir_core::permissions::{Permission, ANY};

/// ListParents supports no resource-level scope for accounts outside this one's knowledge.
pub(crate) const PERMISSIONS: &[Permission] = &[Permission::new("organizations:ListParents", ANY)];

/// How long an account's place is kept: moving an account between OUs takes effect here within
/// this time.
pub const KEEP: Duration = Duration::from_secs(300);

/// Organizations allows five levels of OUs under the root.
const MAX_DEPTH: usize = 6;

/// Per account: when its ancestors were read, and what they were.
type Kept = HashMap<String, (Instant, Vec<String>)>;

/// The organization's tree as far as findings need it, cached per account.
#[derive(Debug, Clone)]
pub struct OrgDirectory {
    client: aws_sdk_organizations::Client,
    known: Arc<Mutex<Kept>>,
}

impl OrgDirectory {
    pub fn new(client: aws_sdk_organizations::Client) -> OrgDirectory {
        OrgDirectory {
            client,
            known: Arc::default(),
        }
    }

    /// The root and OUs above `account`, root first; unknown (with why) when they cannot be read.
    pub async fn path_of(&self, account: &str) -> OrgPath {
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return OrgPath::Unknown(format!("`{account}` is not an account id"));
        }
        if let Some(path) = self.kept(account) {
            return OrgPath::Known(path);
        }
        match self.read(account).await {
            Ok(path) => {
                if let Ok(mut known) = self.known.lock() {
                    known.insert(account.to_string(), (Instant::now(), path.clone()));
                }
                OrgPath::Known(path)
            }
            Err(why) => {
                tracing::warn!(account, %why, "organizational units unknown");
                OrgPath::Unknown(why)
            }
        }
    }

    fn kept(&self, account: &str) -> Option<Vec<String>> {
        let known = self.known.lock().ok()?;
        known
            .get(account)
            .filter(|(at, _)| at.elapsed() < KEEP)
            .map(|(_, path)| path.clone())
    }

    async fn read(&self, account: &str) -> Result<Vec<String>, String> {
        let mut path = Vec::new();
        let mut child = account.to_string();
        for _ in 0..=MAX_DEPTH {
            let (id, kind) = self.parent(&child).await?;
            path.push(id.clone());
            if kind == ParentType::Root {
                path.reverse();
                return Ok(path);
            }
            child = id;
        }
        Err(format!("no root within {MAX_DEPTH} levels above {account}"))
    }

    /// The one parent of `child`. A List* page may be empty with more to come, so every page
    /// is read until a parent appears (Organizations API reference, ListParents).
    async fn parent(&self, child: &str) -> Result<(String, ParentType), String> {
        let mut pages = self
            .client
            .list_parents()
            .child_id(child)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                let code = e.code().unwrap_or("Unreachable").to_string();
                match e.message() {
                    Some(m) => format!("{code}: {m}"),
                    None => code,
                }
            })?;
            if let Some(p) = page.parents().first() {
                if let (Some(id), Some(kind)) = (p.id(), p.r#type()) {
                    return Ok((id.to_string(), kind.clone()));
                }
            }
        }
        Err(format!("ListParents named no parent of {child}"))
    }
}
