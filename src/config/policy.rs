//! Voice policies: park is disabled for a user unless a policy enables it.
//!
//! Policies are tried in the order of the file; the first one that covers the user decides, so a
//! disabling policy listed first carves exceptions out of a broad enabling one.

use regex::Regex;

use super::PolicyConfig;

/// How a policy names its users.
#[derive(Debug, Clone)]
pub enum UserMatcher {
    Exact(String),
    Pattern(Regex),
}

#[derive(Debug, Clone)]
pub struct PolicyRule {
    pub name: String,
    pub enable_call_park: bool,
    pub users: Vec<UserMatcher>,
}

impl PolicyRule {
    pub fn new(c: &PolicyConfig) -> Result<PolicyRule, String> {
        let mut users: Vec<UserMatcher> = c.users.iter().cloned().map(UserMatcher::Exact).collect();
        for p in &c.patterns {
            // Anchored: a policy pattern names whole user ids, as Lync's do.
            let re = Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                format!(
                    "policy `{}`: pattern `{p}` is not a valid regex: {e}",
                    c.name
                )
            })?;
            users.push(UserMatcher::Pattern(re));
        }
        Ok(PolicyRule {
            name: c.name.clone(),
            enable_call_park: c.enable_call_park,
            users,
        })
    }

    fn covers(&self, id: &str) -> bool {
        self.users.iter().any(|m| match m {
            UserMatcher::Exact(s) => s == id,
            UserMatcher::Pattern(r) => r.is_match(id),
        })
    }
}

/// The ordered list of voice policies.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    rules: Vec<PolicyRule>,
}

/// The outcome for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyDecision {
    Allowed { policy: String },
    Denied { policy: String },
    NotCovered,
}

impl PolicySet {
    pub fn new(rules: Vec<PolicyRule>) -> PolicySet {
        PolicySet { rules }
    }

    /// Decides for a user known by several ids (caller number, endpoint, URI).
    pub fn decide<'a>(&self, ids: impl IntoIterator<Item = &'a str> + Clone) -> PolicyDecision {
        for r in &self.rules {
            if ids.clone().into_iter().any(|id| r.covers(id)) {
                return if r.enable_call_park {
                    PolicyDecision::Allowed {
                        policy: r.name.clone(),
                    }
                } else {
                    PolicyDecision::Denied {
                        policy: r.name.clone(),
                    }
                };
            }
        }
        PolicyDecision::NotCovered
    }

    pub fn allows<'a>(&self, ids: impl IntoIterator<Item = &'a str> + Clone) -> bool {
        matches!(self.decide(ids), PolicyDecision::Allowed { .. })
    }

    pub fn rules(&self) -> &[PolicyRule] {
        &self.rules
    }
}
