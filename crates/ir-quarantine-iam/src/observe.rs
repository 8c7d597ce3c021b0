//! Reading the principal (no change): its keys, console password, inline policies and tags —
//! what the playbook works from and what it records as the pre-state.

use std::collections::BTreeMap;

use aws_sdk_iam::types::Tag;
use ir_core::actions::ContainmentError;
use ir_core::permissions::Permission;

use crate::iam::{err_text, is_no_such_entity, ROLE, USER};
use crate::{Observed, Quarantiner, Target};

pub(crate) const GET_USER: Permission = Permission::new("iam:GetUser", USER);
pub(crate) const LIST_USER_TAGS: Permission = Permission::new("iam:ListUserTags", USER);
pub(crate) const LIST_ACCESS_KEYS: Permission = Permission::new("iam:ListAccessKeys", USER);
pub(crate) const GET_LOGIN_PROFILE: Permission = Permission::new("iam:GetLoginProfile", USER);
pub(crate) const LIST_USER_POLICIES: Permission = Permission::new("iam:ListUserPolicies", USER);
pub(crate) const GET_ROLE: Permission = Permission::new("iam:GetRole", ROLE);
pub(crate) const LIST_ROLE_TAGS: Permission = Permission::new("iam:ListRoleTags", ROLE);
pub(crate) const LIST_ROLE_POLICIES: Permission = Permission::new("iam:ListRolePolicies", ROLE);

pub(crate) const PERMISSIONS: &[Permission] = &[
    GET_USER,
    LIST_USER_TAGS,
    LIST_ACCESS_KEYS,
    GET_LOGIN_PROFILE,
    LIST_USER_POLICIES,
    GET_ROLE,
    LIST_ROLE_TAGS,
    LIST_ROLE_POLICIES,
];

fn pairs(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

/// AWS reserves the `AWSServiceRoleFor` prefix and the `/aws-service-role/` path.
pub(crate) fn is_service_linked(name: &str, path: Option<&str>) -> bool {
    name.starts_with("AWSServiceRoleFor")
        || path.is_some_and(|p| p.starts_with("/aws-service-role/"))
}

impl Quarantiner {
    /// Reads the principal, its keys, console password, inline policies and tags.
    pub(crate) async fn read_live(&self, target: &Target) -> Result<Observed, ContainmentError> {
        match target {
            Target::User { name, .. } => self.read_user(target, name).await,
            Target::Role { name, .. } => self.read_role(target, name).await,
        }
    }

    async fn read_user(&self, target: &Target, name: &str) -> Result<Observed, ContainmentError> {
        if let Err(e) = self.iam.get_user().user_name(name).send().await {
            return Err(if is_no_such_entity(&e) {
                ContainmentError::NotFound(target.label())
            } else {
                ContainmentError::read(GET_USER.action, err_text(e))
            });
        }
        let tags = self
            .iam
            .list_user_tags()
            .user_name(name)
            .send()
            .await
            .map_err(|e| ContainmentError::read(LIST_USER_TAGS.action, err_text(e)))?;
        let keys = self
            .iam
            .list_access_keys()
            .user_name(name)
            .send()
            .await
            .map_err(|e| ContainmentError::read(LIST_ACCESS_KEYS.action, err_text(e)))?;
        let console_password_created =
            match self.iam.get_login_profile().user_name(name).send().await {
                Ok(o) => o.login_profile().map(|p| p.create_date().to_string()),
                Err(e) if is_no_such_entity(&e) => None,
                Err(e) => {
                    return Err(ContainmentError::read(
                        GET_LOGIN_PROFILE.action,
                        err_text(e),
                    ))
                }
            };
        let inline = self
            .iam
            .list_user_policies()
            .user_name(name)
            .send()
            .await
            .map_err(|e| ContainmentError::read(LIST_USER_POLICIES.action, err_text(e)))?;
        Ok(Observed {
            tags: pairs(tags.tags()),
            keys: keys
                .access_key_metadata()
                .iter()
                .filter_map(|k| {
                    Some((
                        k.access_key_id()?.to_string(),
                        k.status()?.as_str().to_string(),
                    ))
                })
                .collect(),
            console_password_created,
            inline_policies: inline.policy_names().to_vec(),
            service_linked: false,
        })
    }

    async fn read_role(&self, target: &Target, name: &str) -> Result<Observed, ContainmentError> {
        let role = match self.iam.get_role().role_name(name).send().await {
            Ok(r) => r,
            Err(e) => {
                return Err(if is_no_such_entity(&e) {
                    ContainmentError::NotFound(target.label())
                } else {
                    ContainmentError::read(GET_ROLE.action, err_text(e))
                });
            }
        };
        let service_linked = is_service_linked(name, role.role().map(|r| r.path()));
        let tags = self
            .iam
            .list_role_tags()
            .role_name(name)
            .send()
            .await
            .map_err(|e| ContainmentError::read(LIST_ROLE_TAGS.action, err_text(e)))?;
        let inline = self
            .iam
            .list_role_policies()
            .role_name(name)
            .send()
            .await
            .map_err(|e| ContainmentError::read(LIST_ROLE_POLICIES.action, err_text(e)))?;
        Ok(Observed {
            tags: pairs(tags.tags()),
            keys: BTreeMap::new(),
            console_password_created: None,
            inline_policies: inline.policy_names().to_vec(),
            service_linked,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::is_service_linked;

    #[test]
    fn service_linked_by_prefix_or_path() {
        assert!(is_service_linked("AWSServiceRoleForSupport", None));
        assert!(is_service_linked(
            "custom",
            Some("/aws-service-role/support.amazonaws.com/")
        ));
        assert!(!is_service_linked("app-role", Some("/")));
    }
}
