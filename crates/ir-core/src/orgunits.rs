//! Organizational units in the policy: where a finding's account sits in the AWS Organization.
//!
//! Triage reads the account's ancestors once per container (`organizations:ListParents`, from
//! the account up to the root) when the policy names organizational units anywhere, and hands
//! them to [`crate::Policy::evaluate_in`]. An account is in an OU when the OU is any of its
//! ancestors, so `ou-…` of `Production` also covers `Production/Payments`.

use wildmatch::WildMatch;

/// What triage knows of the finding's account in the organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgPath {
    /// The ids of the root and the OUs above the account, root first (`r-…`, `ou-…`).
    Known(Vec<String>),
    /// The ancestors could not be read: why (an Organizations error code, or no lookup).
    Unknown(String),
}

impl OrgPath {
    /// The ancestors, or none when unknown.
    pub fn ids(&self) -> &[String] {
        match self {
            OrgPath::Known(ids) => ids,
            OrgPath::Unknown(_) => &[],
        }
    }
}

/// An OU id `ou-<4–32>-<8–32>` or a root id `r-<4–32>` (lowercase letters and digits:
/// Organizations' formats, API reference ListParents), exactly; or, with `*` / `?`, a glob of
/// that shape. A typo must not pass: a rule that holds production back would never match.
pub fn is_pattern(pattern: &str) -> bool {
    let glob = pattern.contains(['*', '?']);
    let part = |p: &str, min: usize, max: usize| {
        let chars_ok = p
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || (glob && "*?".contains(c)));
        chars_ok && (glob && !p.is_empty() || (min..=max).contains(&p.len()))
    };
    if let Some(rest) = pattern.strip_prefix("ou-") {
        match rest.split_once('-') {
            Some((root, ou)) => part(root, 4, 32) && !ou.contains('-') && part(ou, 8, 32),
            None => glob && rest.ends_with('*') && part(rest, 4, 32),
        }
    } else if let Some(rest) = pattern.strip_prefix("r-") {
        part(rest, 4, 32)
    } else {
        false
    }
}

/// The first pattern naming one of the ancestors.
pub fn first_in<'a>(patterns: &'a [String], path: &OrgPath) -> Option<&'a String> {
    patterns.iter().find(|p| {
        let m = WildMatch::new(p);
        path.ids().iter().any(|id| m.matches(id))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_organizations_ids() {
        for ok in ["ou-ab12-cd34ef56", "ou-ab12-*", "r-ab12", "ou-*"] {
            assert!(is_pattern(ok), "{ok}");
        }
        for bad in [
            "",
            "ou-",
            "Production",
            "OU-AB12-CD34EF56",
            "111122223333",
            "ou-a-b-c",
        ] {
            assert!(!is_pattern(bad), "{bad}");
        }
    }

    #[test]
    fn an_ou_covers_the_ous_below_it() {
        let path = OrgPath::Known(vec![
            "r-ab12".into(),
            "ou-ab12-prod0001".into(),
            "ou-ab12-pay00001".into(),
        ]);
        assert!(first_in(&["ou-ab12-prod0001".into()], &path).is_some());
        assert!(first_in(&["ou-ab12-sbx00001".into()], &path).is_none());
        assert!(first_in(&["ou-ab12-prod0001".into()], &OrgPath::Unknown("x".into())).is_none());
    }
}
