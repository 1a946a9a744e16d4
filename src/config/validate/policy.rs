//! `[[policy]]`: voice policies.

use super::Bad;
use crate::config::{ConfigError, Lot, PolicyConfig};
use crate::park::{GENERAL_LOT, PolicyRule};

/// `[[policy]]`: each rule's patterns, and the lots it names exist.
pub(super) fn check(
    policy: &[PolicyConfig],
    lots: &[Lot],
    bad: Bad,
) -> Result<Vec<PolicyRule>, ConfigError> {
    let lot_known = |name: &str| name == GENERAL_LOT || lots.iter().any(|l| l.name == name);
    let mut policies = Vec::new();
    for (i, pc) in policy.iter().enumerate() {
        let rule = PolicyRule::new(&pc.name, pc.enable_call_park, &pc.users, &pc.patterns)
            .map_err(|e| bad(format!("policy[{i}].patterns"), e.to_string()))?;
        for l in pc.lots.iter().flatten() {
            if !lot_known(l) {
                return Err(bad(
                    format!("policy[{i}].lots"),
                    format!(
                        "policy `{}` names lot `{l}`, which no [[lot]] defines (`{GENERAL_LOT}` is the ranges without a lot)",
                        pc.name
                    ),
                ));
            }
        }
        if let Some(d) = &pc.default_lot {
            if !lot_known(d) {
                return Err(bad(
                    format!("policy[{i}].default_lot"),
                    format!(
                        "policy `{}`: lot `{d}` is not defined by any [[lot]]",
                        pc.name
                    ),
                ));
            }
            if pc.lots.as_ref().is_some_and(|ls| !ls.contains(d)) {
                return Err(bad(
                    format!("policy[{i}].default_lot"),
                    format!("policy `{}`: default lot `{d}` is not in its lots", pc.name),
                ));
            }
        }
        policies.push(rule.with_lots(pc.lots.clone(), pc.default_lot.clone()));
    }

    Ok(policies)
}
