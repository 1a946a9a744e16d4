//! The `[[policy]]` list, in Lync's precedence.

use super::*;

/// The `[[policy]]` list in Lync's precedence.
pub(super) fn policies(
    ex: &Exported,
    lync_lots: &[String],
    lync_general: bool,
    teams_lots: bool,
    teams_lot_of: &[(&Origin, String)],
    said: &mut Said,
) -> Vec<PolicyPlan> {
    let rank = |s: &PolicyScope| match s {
        PolicyScope::Tag(_) => 0,
        PolicyScope::Site(_) => 2,
        PolicyScope::Global => 3,
    };
    // Per-user policies first, then site ones, then Global: the first policy that covers a
    // parker decides, as Lync applies the most specific one.
    let mut order: Vec<(u8, bool, usize)> = ex
        .voice_policies
        .iter()
        .enumerate()
        .map(|(i, p)| (rank(&p.scope), false, i))
        .chain(ex.teams_policies.iter().enumerate().map(|(i, p)| {
            let r = match p.scope {
                PolicyScope::Tag(_) => 1,
                _ => 4,
            };
            (r, true, i)
        }))
        .collect();
    order.sort_by_key(|(r, _, _)| *r);
    // With Teams lots, Lync's users keep to Lync's orbits.
    let lync_allowed = teams_lots.then(|| {
        let mut l: Vec<String> = Vec::new();
        if lync_general {
            l.push(GENERAL_LOT.into());
        }
        l.extend(lync_lots.iter().cloned());
        l
    });
    let lync_global = ex
        .voice_policies
        .iter()
        .find(|p| p.scope == PolicyScope::Global);
    let mut out = Vec::new();
    for (_, teams, i) in order {
        let (origin, scope, enable) = if teams {
            let p = &ex.teams_policies[i];
            (&p.origin, &p.scope, p.allow_call_park)
        } else {
            let p = &ex.voice_policies[i];
            (&p.origin, &p.scope, p.enable_call_park)
        };
        let switch = if teams {
            "AllowCallPark"
        } else {
            "EnableCallPark"
        };
        let patterns = match scope {
            PolicyScope::Global => {
                if let (true, Some(g)) = (teams, lync_global) {
                    said.warnings.push(format!(
                        "{origin}: {} Global comes first and covers everyone, so this policy covers nobody: give it users or patterns, or drop one of the two",
                        g.origin.cmdlet
                    ));
                }
                vec![".*".to_string()]
            }
            PolicyScope::Site(site) => {
                said.warnings.push(format!(
                    "{origin}: {switch} {}: it applies to the users homed in site {site}, whom these exports do not list: add them to its users or patterns",
                    if enable { "True" } else { "False" }
                ));
                Vec::new()
            }
            PolicyScope::Tag(_) => {
                said.warnings.push(format!(
                    "{origin}: {switch} {}: who holds this per-user policy is not in these exports ({}): add them to its users or patterns",
                    if enable { "True" } else { "False" },
                    if teams {
                        "Get-CsOnlineUser lists each user's TeamsCallParkPolicy"
                    } else {
                        "Get-CsUser lists each user's VoicePolicy"
                    }
                ));
                Vec::new()
            }
        };
        let (lots, default_lot) = if teams {
            match teams_lot_of.iter().find(|(o, _)| *o == origin) {
                Some((_, lot)) => (Some(vec![lot.clone()]), Some(lot.clone())),
                None => (None, None),
            }
        } else {
            (lync_allowed.clone().filter(|_| enable), None)
        };
        out.push(PolicyPlan {
            name: if teams {
                format!("Teams {}", origin.identity)
            } else {
                origin.identity.clone()
            },
            enable,
            patterns,
            lots,
            default_lot,
            why: format!(
                "{} `{}` ({}:{}): {switch} {}",
                origin.cmdlet,
                origin.identity,
                origin.file,
                origin.line,
                if enable { "True" } else { "False" }
            ),
        });
    }
    out
}
