//! Variables set inline (`inline="true"`) during the hunt: conditions on them are decided on
//! the value set before, in the same extension or in an earlier one.

use super::{Action, Break, Condition, Extension, Test};

/// What `x` leaves set for the extensions after it: a literal value set inline by a condition
/// that every call entering `x` evaluates and that is always true (the conditions before it
/// never stop the extension: `break="never"`, or a constant truth they do not break on); any other inline set makes the value unknown,
/// as only some calls ran it.
pub(super) fn carry_inline_vars(x: &Extension, carried: &mut Vec<(String, Option<String>)>) {
    let mut reached = true;
    for c in &x.conditions {
        let truth = match c.test {
            Test::Always | Test::Fixed(true) => Some(true),
            Test::Fixed(false) => Some(false),
            _ => None,
        };
        let surely = reached && truth == Some(true);
        let sets = c.actions.iter().map(|a| (a, surely));
        let anti = c.anti_actions.iter().map(|a| (a, false));
        for (a, runs) in sets.chain(anti).filter(|(a, _)| a.inline) {
            if let Some(k) = inline_set(a) {
                let value = a.data.split_once('=').map(|(_, v)| v).unwrap_or_default();
                let value = (runs && !value.contains('$')).then(|| value.to_string());
                carried.push((k, value));
            }
        }
        let mut inner = Vec::new();
        nested_inline_vars(&c.nested, &mut inner);
        carried.extend(inner.into_iter().map(|k| (k, None)));
        // Every call goes on to the next condition only when this one's constant truth does
        // not stop the extension and nothing nested may fail it.
        reached = reached
            && c.nested.is_empty()
            && matches!(
                (truth, c.brk),
                (_, Break::Never) | (Some(true), Break::OnFalse) | (Some(false), Break::OnTrue)
            );
    }
}

/// The variables conditions nested somewhere in `conds` set inline.
fn nested_inline_vars(conds: &[Condition], out: &mut Vec<String>) {
    for c in conds {
        out.extend(
            c.actions
                .iter()
                .chain(&c.anti_actions)
                .filter(|a| a.inline)
                .filter_map(inline_set),
        );
        nested_inline_vars(&c.nested, out);
    }
}

/// Conditions on a variable that an earlier condition of the same extension surely set
/// inline (`set name=value inline="true"` in an unconditional condition: every number that
/// reaches a later condition went through it) are decided on that value, as FreeSWITCH would
/// during the hunt. A set that only some calls run makes the value unknown again; so does any
/// set inside nested conditions for the conditions after their parent (not every call
/// reaches them).
pub(super) fn decide_inline_vars(
    conds: &mut [Condition],
    known: &mut Vec<(String, Option<String>)>,
) {
    for c in conds {
        if let (Test::Unknown(_), Some((name, expr))) = (&c.test, &c.var_test)
            && let Some((_, Some(value))) = known.iter().rev().find(|(k, _)| k == name)
            && let Ok(re) = regex::Regex::new(expr)
        {
            c.test = Test::Fixed(re.is_match(value));
        }
        let surely = matches!(c.test, Test::Always | Test::Fixed(true));
        let sets = c.actions.iter().map(|a| (a, surely));
        let anti = c.anti_actions.iter().map(|a| (a, false));
        for (a, runs) in sets.chain(anti).filter(|(a, _)| a.inline) {
            if let Some(k) = inline_set(a) {
                let value = a.data.split_once('=').map(|(_, v)| v).unwrap_or_default();
                let value = (runs && !value.contains('$')).then(|| value.to_string());
                known.push((k, value));
            }
        }
        if !c.nested.is_empty() {
            let mut inner = known.clone();
            decide_inline_vars(&mut c.nested, &mut inner);
            for (k, _) in inner.drain(known.len()..) {
                known.push((k, None));
            }
        }
    }
}

/// The variable an inline `set`/`export` gives a value.
fn inline_set(a: &Action) -> Option<String> {
    matches!(
        a.application.to_ascii_lowercase().as_str(),
        "set" | "export"
    )
    .then(|| a.data.split_once('=').map(|(k, _)| k.trim().to_string()))
    .flatten()
}
