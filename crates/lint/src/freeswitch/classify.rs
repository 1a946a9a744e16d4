//! What an extension is: callpark's own, a destination that owns the numbers it takes, or a
//! rule callpark's extensions go in front of.

use super::{Action, Extension};
use crate::Kind;

/// Applications that only prepare the call for what follows: an extension that runs nothing
/// else is no destination of its own.
const PREPARES: [&str; 34] = [
    "set",
    "export",
    "multiset",
    "unset",
    "multiunset",
    "push",
    "unshift",
    "set_global",
    "set_profile_var",
    "set_user",
    "set_name",
    "hash",
    "db",
    "limit",
    "group",
    "log",
    "info",
    "event",
    "verbose_events",
    "answer",
    "pre_answer",
    "ring_ready",
    "sleep",
    "sched_hangup",
    "sched_cancel",
    "record_session",
    "bind_meta_app",
    "bind_digit_action",
    "digit_action_set_realm",
    "privacy",
    "presence",
    "set_zombie_exec",
    "enable_heartbeat",
    "send_display",
];

/// callpark's own extensions: those `callpark dialplan freeswitch` writes (all named
/// `callpark-...`), and hand-written ones named so or whose actions name callpark (for example
/// `transfer $1 XML callpark`, or a `socket` to callpark's address with `callpark` in its data).
pub(super) fn is_callpark(x: &Extension) -> bool {
    x.name.to_ascii_lowercase().starts_with("callpark")
        || x.all_conditions().iter().any(|c| {
            c.actions.iter().chain(&c.anti_actions).any(|a| {
                a.data.to_ascii_lowercase().contains("callpark")
                    || a.application.to_ascii_lowercase().contains("callpark")
            })
        })
}

/// The top-level alternatives of a pattern (`a|b|(c|d)` gives `a`, `b`, `(c|d)`).
fn alternatives(expr: &str) -> Vec<&str> {
    let (mut depth, mut in_class, mut esc, mut start) = (0i32, false, false, 0);
    let mut out = Vec::new();
    for (i, c) in expr.char_indices() {
        match c {
            _ if esc => esc = false,
            '\\' => esc = true,
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '(' if !in_class => depth += 1,
            ')' if !in_class => depth -= 1,
            '|' if !in_class && depth == 0 => {
                out.push(&expr[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&expr[start..]);
    out
}

/// The text a pattern matches when it matches exactly one string (`^9196$`, `^(\*4000)$`,
/// `^\Q*98\E$`), anchored at both ends; `None` for anything else.
fn literal(expr: &str) -> Option<String> {
    let mut core = expr.strip_prefix('^')?.strip_suffix('$')?;
    while let Some(inner) = core.strip_prefix('(').and_then(|c| c.strip_suffix(')')) {
        if alternatives(inner).len() > 1 {
            return None;
        }
        core = inner;
    }
    let mut out = String::new();
    let mut chars = core.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                'Q' => {
                    let rest: String = chars.by_ref().collect();
                    let (quoted, after) = rest.split_once("\\E").unwrap_or((&rest, ""));
                    out.push_str(quoted);
                    if !after.is_empty() {
                        return None;
                    }
                    break;
                }
                n if n.is_ascii_punctuation() => out.push(n),
                _ => return None,
            },
            c if c.is_ascii_alphanumeric() || matches!(c, '*' | '#' | '+' | '-' | '_' | '@') => {
                if matches!(c, '*' | '+') {
                    return None;
                }
                out.push(c)
            }
            _ => return None,
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The strings a `destination_number` expression names exactly: the whole expression, or each
/// alternative of `^a$|^b$` or `^(a|b)$` that is one literal string (`vmain`, `*4000`).
pub(super) fn exact_numbers(expr: &str) -> Vec<String> {
    let mut out: Vec<String> = alternatives(expr).into_iter().filter_map(literal).collect();
    if let Some(inner) = expr
        .strip_prefix("^(")
        .and_then(|e| e.strip_suffix(")$"))
        .filter(|i| alternatives(i).len() > 1)
    {
        out.extend(
            alternatives(inner)
                .into_iter()
                .filter_map(|a| literal(&format!("^{a}$"))),
        );
    }
    out
}

/// Whether every alternative of the expression is one literal string.
fn names_numbers(expr: &str) -> bool {
    let whole = alternatives(expr);
    if whole.iter().all(|a| literal(a).is_some()) {
        return true;
    }
    expr.strip_prefix("^(")
        .and_then(|e| e.strip_suffix(")$"))
        .is_some_and(|inner| {
            alternatives(inner)
                .iter()
                .all(|a| literal(&format!("^{a}$")).is_some())
        })
}

/// Whether an expression matches numbers of any length (`^(.*)$`, `^\*9(\d+)$`).
fn is_catch_all(expr: &str) -> bool {
    let bare = expr.replace(r"\*", "").replace(r"\+", "");
    bare.contains('*') || bare.contains('+')
}

/// What one action says about the numbers that reach it (see `classify`).
fn action_kind(a: &Action) -> Option<(Kind, String)> {
    let app = a.application.to_ascii_lowercase();
    let d = a.data.to_ascii_lowercase();
    let shown = format!("{} {}", a.application, a.data);
    let shown = shown.trim();
    match app.as_str() {
        "bridge" => {
            if d.contains("app=voicemail") {
                Some((Kind::Conflicts, format!("it takes voicemail (`{shown}`)")))
            } else if d.contains("user/") || d.contains("sofia/internal/") {
                Some((
                    Kind::Conflicts,
                    format!("it rings the phone of the dialled number (`{shown}`)"),
                ))
            } else if d.contains("gateway/") || d.contains("sofia/external/") {
                Some((
                    Kind::Catches,
                    format!("it dials out through a gateway (`{shown}`)"),
                ))
            } else {
                None
            }
        }
        "voicemail" | "conference" | "ivr" | "fifo" | "echo" | "delay_echo" | "valet_park"
        | "pickup" | "intercept" | "eavesdrop" | "three_way" | "callcenter" => {
            Some((Kind::Conflicts, format!("it runs a service (`{shown}`)")))
        }
        "transfer" | "execute_extension" | "deflect" | "redirect" => {
            Some((Kind::Catches, format!("it sends the number on (`{shown}`)")))
        }
        _ => None,
    }
}

/// Whether orbits taken by `x` are to be protected from it (`Catches`) or are its own
/// numbers (`Conflicts`), and why. An expression matching any length is a catch-all; one whose
/// alternatives are all literal strings names destinations. Otherwise the first action that
/// says something decides (`bridge user/...`, `voicemail`, `conference`, `ivr` are
/// destinations; `transfer` or a gateway sends the number on); an action the lint cannot
/// follow (a script, an application it does not know) is taken as a destination, so no fix
/// ever reorders it. An extension that only prepares the call (`set`, `answer`, `log`...) or
/// does nothing at all `Catches`: the call goes nowhere there.
pub fn classify(x: &Extension) -> (Kind, String) {
    let conds = x.all_conditions();
    let exprs: Vec<&str> = conds.iter().flat_map(|c| c.destination_exprs()).collect();
    if let Some(e) = exprs.iter().find(|e| is_catch_all(e)) {
        return (
            Kind::Catches,
            format!(
                "`{e}` matches numbers of any length: a catch-all, callpark goes in front of it"
            ),
        );
    }
    if let Some(e) = exprs.iter().find(|e| names_numbers(e)) {
        return (
            Kind::Conflicts,
            if alternatives(e).len() > 1 || exact_numbers(e).len() > 1 {
                format!("`{e}` names its numbers one by one: destinations of their own")
            } else {
                format!("`{e}` names one number: a destination of its own")
            },
        );
    }
    let queued = || {
        conds
            .iter()
            .flat_map(|c| c.actions.iter().chain(&c.anti_actions))
            .filter(|a| !a.inline)
    };
    if let Some(k) = queued().find_map(action_kind) {
        return k;
    }
    if let Some(a) =
        queued().find(|a| !PREPARES.contains(&a.application.to_ascii_lowercase().as_str()))
    {
        let shown = format!("{} {}", a.application, a.data);
        return (
            Kind::Conflicts,
            format!(
                "it runs `{}`, which the lint cannot follow: taken as a destination, never reordered",
                shown.trim()
            ),
        );
    }
    (
        Kind::Catches,
        "no action of it is a destination (a phone, voicemail, a conference, an IVR, a script): the call goes nowhere there".into(),
    )
}
