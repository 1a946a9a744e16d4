//! Checking an Asterisk dialplan against the orbit table: which extension takes each orbit, and
//! whether it is a destination of its own or one callpark can go in front of.

use super::order::search_order;
use super::pattern::exten_regex;
use super::{Dialplan, Exten, fix};
use crate::automaton::{Dialect, Matcher};
use crate::{Certainty, Kind, LintError, Report, RuleAt, Source};

/// Whether an extension is callpark's: it enters the callpark Stasis app or goes to a
/// `callpark...` context, or it lives in one (the generated include).
pub(super) fn is_callpark(context: &str, app: &str) -> bool {
    if context.to_ascii_lowercase().starts_with("callpark") {
        return true;
    }
    let (name, args) = match app.split_once('(') {
        Some((n, a)) => (n.trim().to_ascii_lowercase(), a.trim_end_matches(')')),
        None => match app.split_once(',') {
            Some((n, a)) => (n.trim().to_ascii_lowercase(), a),
            None => (app.trim().to_ascii_lowercase(), ""),
        },
    };
    let first = args
        .split(',')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match name.as_str() {
        "stasis" => first.starts_with("callpark"),
        "goto" | "gosub" => args.split(',').count() >= 2 && first.starts_with("callpark"),
        _ => false,
    }
}

/// The context callpark's extensions live in, from the first extension that reaches them: its
/// own, unless it only jumps there from another context (`exten => 6000,1,Goto(callpark,park,1)`
/// in the phones' context), where a fix's `Goto` to that context would loop back into it.
fn callpark_home(context: &str, app: &str) -> String {
    let (name, args) = split_app(app);
    let parts: Vec<&str> = args.split(',').map(str::trim).collect();
    if matches!(name.as_str(), "goto" | "gosub")
        && !context.to_ascii_lowercase().starts_with("callpark")
        && parts.len() >= 3
        && parts[0].to_ascii_lowercase().starts_with("callpark")
    {
        return parts[0].to_string();
    }
    context.to_string()
}

/// An application's name (lower case) and its arguments, from `Name(args)`.
fn split_app(app: &str) -> (String, &str) {
    match app.split_once('(') {
        Some((n, a)) => (
            n.trim().to_ascii_lowercase(),
            a.trim_end().trim_end_matches(')'),
        ),
        None => match app.split_once(',') {
            Some((n, a)) => (n.trim().to_ascii_lowercase(), a),
            None => (app.trim().to_ascii_lowercase(), ""),
        },
    }
}

/// Whether `args` name a device `TECH/${EXTEN}` (no `@host`, no trunk after it).
fn passes_phone(args: &str) -> bool {
    let up = args.to_ascii_uppercase();
    ["PJSIP/", "SIP/", "IAX2/", "DAHDI/", "CONSOLE/"]
        .iter()
        .any(|t| {
            let d = format!("{t}${{EXTEN}}");
            up.match_indices(&d).any(|(i, _)| {
                !up[i + d.len()..].starts_with('@') && !up[i + d.len()..].starts_with('/')
            })
        })
}

/// What one application says about the numbers that reach it: `Some(Conflicts)` for a
/// destination, `Some(Catches)` for routing onward, `None` when it says nothing (`NoOp`,
/// `Set`, `Verbose`...).
fn app_kind(dp: &Dialplan, app: &str, depth: u32) -> Option<(Kind, String)> {
    let (name, args) = split_app(app);
    let shown = app.trim();
    match name.as_str() {
        "dial" => {
            // Each device of `Dial(TECH/resource&...)`: `PJSIP/${EXTEN}` rings the phone of
            // that number; `PJSIP/${EXTEN}@trunk` or `SIP/trunk/${EXTEN}` sends it out.
            let devices = args.split(',').next().unwrap_or("");
            let mut fixed = false;
            for dev in devices.split('&') {
                let Some((tech, res)) = dev.trim().split_once('/') else {
                    continue;
                };
                if tech.eq_ignore_ascii_case("local") {
                    continue;
                }
                fixed = fixed || !res.contains('$');
                if res.contains('@') || res.contains('/') {
                    return Some((
                        Kind::Catches,
                        format!("it dials out through a trunk (`{shown}`)"),
                    ));
                }
                if res.to_ascii_uppercase().contains("EXTEN") {
                    return Some((
                        Kind::Conflicts,
                        format!("it rings the phone of the dialled number (`{shown}`)"),
                    ));
                }
            }
            // One fixed phone for every number: the numbers are not destinations of their own.
            fixed.then(|| {
                (
                    Kind::Catches,
                    format!("it rings the same phone whatever the number (`{shown}`)"),
                )
            })
        }
        "voicemail" => Some((Kind::Conflicts, format!("it takes voicemail (`{shown}`)"))),
        "voicemailmain" | "confbridge" | "meetme" | "queue" | "directory" | "background"
        | "waitexten" | "read" | "page" => {
            Some((Kind::Conflicts, format!("it runs a service (`{shown}`)")))
        }
        "goto" | "gosub" => {
            // A subroutine handed the phone of the dialled number (`Gosub(page,s,1(SIP/${EXTEN}))`)
            // rings or pages it.
            if passes_phone(args) {
                return Some((
                    Kind::Conflicts,
                    format!("it hands the phone of the dialled number on (`{shown}`)"),
                ));
            }
            let parts: Vec<&str> = args.split(',').map(str::trim).collect();
            if parts.len() < 3 || depth >= 3 {
                return None;
            }
            let ctx = dp.context(parts[0])?;
            // The context it goes to decides: an IVR or phones are destinations, a
            // context that dials trunks routes onward.
            for e in &ctx.extens {
                for a in &e.apps {
                    if let Some((k, w)) = app_kind(dp, a, depth + 1) {
                        return Some((k, format!("it goes to [{}], where {w}", ctx.name)));
                    }
                }
            }
            None
        }
        _ => None,
    }
}

/// Whether orbits taken by `e` are to be protected from it (`Catches`) or are its own
/// numbers (`Conflicts`), and why. An exact extension is a destination; a pattern with `.`
/// or `!` is a catch-all; any other pattern is judged by the first of its applications that
/// says something (`app_kind`). When nothing does, `Catches`, the lint's behaviour before it
/// told the two apart.
pub fn classify(dp: &Dialplan, e: &Exten) -> (Kind, String) {
    let Some(p) = e.name.strip_prefix('_') else {
        let what = e
            .apps
            .iter()
            .find_map(|a| app_kind(dp, a, 0).map(|(_, w)| format!(": {w}")))
            .unwrap_or_default();
        return (
            Kind::Conflicts,
            format!(
                "`{}` is an exact extension, a destination of its own{what}",
                e.name
            ),
        );
    };
    if p.contains('.') || p.contains('!') {
        return (
            Kind::Catches,
            format!(
                "`{}` matches numbers of any length: a catch-all, callpark goes in front of it",
                e.name
            ),
        );
    }
    for a in &e.apps {
        if let Some((k, w)) = app_kind(dp, a, 0) {
            return (k, w);
        }
    }
    // An application the lint cannot follow (AGI, Macro, a Goto it cannot resolve, one it
    // does not know) may well be a destination: never offer a fix that reorders it.
    if let Some(a) = e
        .apps
        .iter()
        .find(|a| !PREPARES.contains(&split_app(a).0.as_str()))
    {
        return (
            Kind::Conflicts,
            format!(
                "it runs `{}`, which the lint cannot follow: taken as a destination, never reordered",
                a.trim()
            ),
        );
    }
    (
        Kind::Catches,
        "no application of it is a destination (a phone, voicemail, an IVR, a script): it only prepares the call or ends it".into(),
    )
}

/// Applications that only prepare a call for what follows, or end it (a message played before
/// a hang-up included): an extension that runs nothing else is no destination of its own.
const PREPARES: [&str; 23] = [
    "noop",
    "playback",
    "set",
    "setvar",
    "verbose",
    "log",
    "answer",
    "wait",
    "ringing",
    "progress",
    "playtones",
    "stopplaytones",
    "mixmonitor",
    "monitor",
    "sipaddheader",
    "setcallerpres",
    "setcidname",
    "setcidnum",
    "hangup",
    "congestion",
    "busy",
    "return",
    "macroexit",
];

/// Checks the orbits dialled in `context`.
pub fn check(dp: &Dialplan, context: &str, report: &mut Report) -> Result<(), LintError> {
    let Some(root) = dp.context(context) else {
        return Err(LintError::Usage(format!(
            "no context [{context}] in the Asterisk dialplan"
        )));
    };
    if dp.pattern_match_new {
        report.notes.push(
            "extenpatternmatchnew = yes: Asterisk uses its other matcher there; the lint models the default one".into(),
        );
    }
    let order = search_order(dp, context);
    report.rules += order.len();
    let mut matchers: Vec<Option<Matcher>> = order
        .iter()
        .map(|e| {
            if e.switch {
                return None;
            }
            exten_regex(&e.exten.name).and_then(|r| Matcher::new(&r, Dialect::Rust).ok())
        })
        .collect();
    // Where callpark's extensions live: reached from here, or at least defined somewhere.
    let cp_ctx = order
        .iter()
        .find(|e| is_callpark(&e.context.name, e.exten.app1.as_deref().unwrap_or("")))
        .map(|e| callpark_home(&e.context.name, e.exten.app1.as_deref().unwrap_or("")))
        .or_else(|| {
            dp.contexts
                .iter()
                .find(|c| {
                    c.name.to_ascii_lowercase().starts_with("callpark") && !c.extens.is_empty()
                })
                .map(|c| c.name.clone())
        });
    for ti in 0..report.targets.len() {
        let range = report.targets[ti].range.clone();
        let mut remaining = range.all();
        for (k, e) in order.iter().enumerate() {
            if remaining.is_empty() {
                break;
            }
            if e.switch {
                let rule = format!("switch => {}@{}", e.exten.name, e.context.name);
                let at = RuleAt {
                    source: Source::Asterisk,
                    file: &e.exten.file,
                    line: e.exten.line,
                    rule: &rule,
                    scope: &root.name,
                };
                report.add_finding(
                    &at,
                    Certainty::MayCatch,
                    ti,
                    remaining.clone(),
                    Some("a switch is asked before the includes and answers for whatever the other end has".into()),
                );
                continue;
            }
            let Some(m) = matchers[k].as_mut() else {
                continue;
            };
            // Asterisk's own notation: extension@context.
            let label = format!("{}@{}", e.exten.name, e.context.name);
            let at = RuleAt {
                source: Source::Asterisk,
                file: &e.exten.file,
                line: e.exten.line,
                rule: &label,
                scope: &root.name,
            };
            let hit = match m.matching(&range) {
                Ok(h) => h.intersect(&remaining),
                Err(w) => {
                    report.add_finding(&at, Certainty::Undecided, ti, remaining.clone(), Some(w.0));
                    continue;
                }
            };
            if hit.is_empty() {
                continue;
            }
            let app = e.exten.app1.as_deref().unwrap_or("");
            if is_callpark(&e.context.name, app) {
                if e.exten.cid.is_none() && !e.timed {
                    remaining = remaining.difference(&hit);
                }
                continue;
            }
            if e.exten.cid.is_some() || e.timed {
                let why = if e.timed {
                    "reached through a time-restricted include".to_string()
                } else {
                    format!(
                        "only for callers matching `{}`",
                        e.exten.cid.as_deref().unwrap_or("")
                    )
                };
                report.add_finding(&at, Certainty::MayCatch, ti, hit, Some(why));
                continue;
            }
            report.add_finding(&at, Certainty::Caught, ti, hit.clone(), None);
            remaining = remaining.difference(&hit);
        }
        let at = RuleAt {
            source: Source::Asterisk,
            file: &root.file,
            line: root.line,
            rule: "(no extension)",
            scope: &root.name,
        };
        report.add_finding(
            &at,
            Certainty::Caught,
            ti,
            remaining,
            Some("no extension of this context or its includes runs these orbits".into()),
        );
    }
    let kinds: Vec<Option<(Kind, String)>> = order
        .iter()
        .map(|e| {
            let cp = is_callpark(&e.context.name, e.exten.app1.as_deref().unwrap_or(""));
            (!e.switch && !cp).then(|| classify(dp, e.exten))
        })
        .collect();
    fix::propose(&order, &kinds, root, cp_ctx.as_deref(), report);
    Ok(())
}
