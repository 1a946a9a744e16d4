//! Voice policies: park is disabled for a user unless a policy enables it.
//!
//! Policies are tried in their configured order; the first one that covers the user decides, so
//! a disabling policy listed first carves exceptions out of a broad enabling one.
//!
//! They live here rather than in `config` because deciding who may park is a rule the core
//! applies on every park; `config` only reads them from the file and builds them.

use regex::Regex;

/// How a policy names the general lot: the ranges that name no `lot`.
pub const GENERAL_LOT: &str = "general";

/// How a policy names its users.
#[derive(Debug, Clone)]
enum UserMatcher {
    /// One user id.
    Exact(String),
    /// The user ids a regular expression matches whole.
    Pattern(Regex),
}

/// A policy pattern that does not compile: the policy, the pattern and the regex error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("policy `{policy}`: pattern `{pattern}` is not a valid regex: {error}")]
pub struct PolicyError {
    /// The policy's name.
    pub policy: String,
    /// The pattern as configured (not anchored).
    pub pattern: String,
    /// Why it does not compile.
    pub error: regex::Error,
}

/// One voice policy (Lync's `EnableCallPark` and the users it is granted to).
#[derive(Debug, Clone)]
pub struct PolicyRule {
    /// The policy's name, as decisions and logs give it.
    pub name: String,
    /// Whether the policy enables call park for its users (or disables it).
    pub enable_call_park: bool,
    /// Its users.
    users: Vec<UserMatcher>,
    /// The lots its users may park into (`general` for the ranges of no lot); `None`: all.
    lots: Option<Vec<String>>,
    /// The lot a plain park (no lot asked for) of its users goes to; `None`: any it allows.
    pub(super) default_lot: Option<String>,
}

impl PolicyRule {
    /// `users` are exact user ids, `patterns` regular expressions; the error names the
    /// pattern that does not compile.
    pub fn new(
        name: &str,
        enable_call_park: bool,
        users: &[String],
        patterns: &[String],
    ) -> Result<PolicyRule, PolicyError> {
        let mut matchers: Vec<UserMatcher> =
            users.iter().cloned().map(UserMatcher::Exact).collect();
        for p in patterns {
            // Anchored: a policy pattern names whole user ids, as Lync's do.
            let re = Regex::new(&format!("^(?:{p})$")).map_err(|error| PolicyError {
                policy: name.to_string(),
                pattern: p.clone(),
                error,
            })?;
            matchers.push(UserMatcher::Pattern(re));
        }
        Ok(PolicyRule {
            name: name.to_string(),
            enable_call_park,
            users: matchers,
            lots: None,
            default_lot: None,
        })
    }

    /// Limits the lots its users may park into, and names their default lot.
    pub fn with_lots(mut self, lots: Option<Vec<String>>, default_lot: Option<String>) -> Self {
        self.lots = lots;
        self.default_lot = default_lot;
        self
    }

    /// Whether its users may park into `lot` (`None`: the general lot).
    pub(crate) fn allows_lot(&self, lot: Option<&str>) -> bool {
        let name = lot.unwrap_or(GENERAL_LOT);
        self.lots
            .as_ref()
            .is_none_or(|ls| ls.iter().any(|l| l == name))
    }

    fn covers(&self, id: &str) -> bool {
        self.users.iter().any(|m| match m {
            UserMatcher::Exact(s) => s == id,
            UserMatcher::Pattern(r) => r.is_match(id),
        })
    }
}

/// The ordered list of voice policies.
///
/// ```
/// use callpark_core::park::{PolicyRule, PolicySet};
///
/// let policies = PolicySet::new(vec![
///     PolicyRule::new("lobby", false, &["lobby".into()], &[])?,
///     PolicyRule::new("staff", true, &[], &["[a-z]+".into()])?,
/// ]);
/// assert!(policies.allows(["alice"]));
/// // The first policy that covers a user decides: `lobby` is a staff id, but disabled first.
/// assert!(!policies.allows(["lobby"]));
/// // Nobody is allowed unless a policy says so.
/// assert!(!policies.allows(["1001"]));
/// # Ok::<(), callpark_core::park::PolicyError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    rules: Vec<PolicyRule>,
}

impl PolicySet {
    /// The policies, tried in this order.
    pub fn new(rules: Vec<PolicyRule>) -> PolicySet {
        PolicySet { rules }
    }

    /// The policy that decides for a user known by several ids: the first covering one.
    pub(crate) fn rule_for<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Option<&PolicyRule> {
        self.rules
            .iter()
            .find(|r| ids.clone().into_iter().any(|id| r.covers(id)))
    }

    /// Whether the user may park (a policy covers it and enables call park).
    pub fn allows<'a>(&self, ids: impl IntoIterator<Item = &'a str> + Clone) -> bool {
        self.rule_for(ids).is_some_and(|r| r.enable_call_park)
    }

    /// The policies, in order.
    pub fn rules(&self) -> &[PolicyRule] {
        &self.rules
    }
}
