//! The fix proposed for a FreeSWITCH finding: callpark's extensions in front of the catching
//! one, or, for a destination, the orbits moved to a free range.

use super::classify::exact_numbers;
use super::{Dialplan, Extension, FsContext};
use crate::automaton::{Dialect, Matcher, NumRange};
use crate::runs::RunSet;
use crate::{Finding, Kind, Report, Source};

/// Gives each finding in `context` still without a fix its kind (`kinds`: `classify` of each
/// extension of `exts`) and a fix that can be pasted: callpark's extensions in front of what
/// catches the orbits, or, for a destination, another orbit range. `ctx` is the context
/// hunted, `cps` tells callpark's own extensions.
pub(super) fn propose(
    dp: &Dialplan,
    ctx: &FsContext,
    context: &str,
    exts: &[&Extension],
    cps: &[bool],
    kinds: &[(Kind, String)],
    report: &mut Report,
) {
    let targets = report.targets.clone();
    let ranges: Vec<NumRange> = targets.iter().map(|t| t.range.clone()).collect();
    // A range to move to is free when no destination of the context matches any of it
    // (conditions on other fields are ignored: a suggestion errs on the side of "taken").
    let mut is_free = |c: &NumRange| {
        exts.iter()
            .zip(kinds)
            .enumerate()
            .all(|(k, (x, (kind, _)))| {
                *kind == Kind::Catches
                    || cps[k]
                    || x.all_conditions().iter().all(|cond| {
                        cond.destination_exprs().iter().all(|e| {
                            Matcher::new(e, Dialect::Pcre)
                                .ok()
                                .and_then(|mut m| m.matching(c).ok())
                                .is_none_or(|hit| hit.is_empty())
                        })
                    })
            })
    };
    let mine =
        |f: &Finding| f.source == Source::FreeSwitch && f.scope == context && f.fix.is_empty();
    for f in report.findings.iter_mut().filter(|f| mine(f)) {
        if let Some(k) = exts
            .iter()
            .position(|x| x.file == f.file && x.line == f.line && x.name == f.rule)
        {
            (f.kind, f.kind_why) = (kinds[k].0, Some(kinds[k].1.clone()));
            // An orbit an alternative names exactly is that extension's own number, whatever
            // else its expression matches: moving callpark above it would take it away.
            if f.kind == Kind::Catches
                && let Some(n) = exts[k]
                    .all_conditions()
                    .iter()
                    .flat_map(|c| c.destination_exprs())
                    .flat_map(exact_numbers)
                    .find(|n| {
                        f.caught.iter().any(|(t, set)| {
                            let r = &ranges[*t];
                            set.values().any(|v| r.text(v) == *n)
                        })
                    })
            {
                f.kind = Kind::Conflicts;
                f.kind_why = Some(format!("it names `{n}` exactly: a destination of its own"));
            }
        }
    }
    // Orbits that are destinations further down stay out of the insertion fixes above them
    // (`unloop` may catch everything; protecting the phones from it would take them away).
    let mut owned: Vec<RunSet> = vec![RunSet::new(); targets.len()];
    for f in report
        .findings
        .iter()
        .filter(|f| mine(f) && f.kind == Kind::Conflicts)
    {
        for (t, r) in &f.caught {
            owned[*t] = owned[*t].union(r);
        }
    }
    let place = callpark_place(dp, exts, cps);
    for f in report.findings.iter_mut().filter(|f| mine(f)) {
        let mut g = f.clone();
        g.caught = g
            .caught
            .iter()
            .map(|(t, r)| (*t, r.difference(&owned[*t])))
            .filter(|(_, r)| !r.is_empty())
            .collect();
        f.fix = if f.kind == Kind::Catches && g.caught.is_empty() {
            "none: these orbits are destinations further down (see the conflicts)".into()
        } else if f.kind == Kind::Catches {
            let fix = fix_for(&g, place.as_deref(), ctx);
            // callpark's extensions hold every orbit of a range: in front of a destination
            // that owns some of them they would take it away. Renumbering comes first.
            if f.caught.iter().any(|(t, _)| !owned[*t].is_empty()) {
                format!(
                    "once the orbits no longer collide with the destinations (see the conflicts), {fix}"
                )
            } else {
                fix
            }
        } else {
            f.caught
                .iter()
                .map(|(t, _)| {
                    let free = crate::free_ranges(&ranges[*t], &ranges, 3, &mut is_free);
                    crate::move_fix(&ranges[*t], &free, &format!("context {context}"))
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
    }
}

/// Where callpark's extensions of a context come from: the `X-PRE-PROCESS include` line that
/// brought them in, or the first of them when written into the file itself.
fn callpark_place(dp: &Dialplan, exts: &[&Extension], cps: &[bool]) -> Option<String> {
    let first = exts.iter().zip(cps).find(|(_, c)| **c).map(|(x, _)| *x)?;
    Some(
        match dp.includes.iter().find(|i| i.files.contains(&first.file)) {
            Some(i) => format!(
                "the line <X-PRE-PROCESS cmd=\"include\" data=\"{}\"/> ({}:{})",
                i.data, i.file, i.line
            ),
            None => format!(
                "<extension name=\"{}\"> ({}:{})",
                first.name, first.file, first.line
            ),
        },
    )
}

/// The fix for orbits an extension catches: callpark's extensions in front of it. When the
/// context has them, move them (their include line, or the extension); otherwise add the
/// include line of the file `callpark dialplan freeswitch` writes.
fn fix_for(f: &Finding, place: Option<&str>, ctx: &FsContext) -> String {
    let before = if f.rule == "(no extension)" {
        format!(
            "at the top of <context name=\"{}\"> ({}:{})",
            ctx.name, ctx.file, ctx.line
        )
    } else {
        format!(
            "above <extension name=\"{}\"> ({}:{}), best at the top of <context name=\"{}\">",
            f.rule, f.file, f.line, ctx.name
        )
    };
    match place {
        Some(p) if f.rule == "(no extension)" => format!(
            "callpark's extensions in this context ({p}) do not hold these orbits: write the file again with `callpark dialplan freeswitch` from the configuration that lists them, then reloadxml"
        ),
        Some(p) => format!("move {p} {before}"),
        None => format!(
            "write callpark's extensions with `callpark dialplan freeswitch > callpark.xml` (beside this file) and put <X-PRE-PROCESS cmd=\"include\" data=\"callpark.xml\"/> {before}"
        ),
    }
}
