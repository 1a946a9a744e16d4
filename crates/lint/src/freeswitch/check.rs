//! Checking a FreeSWITCH context against the orbit table: which extension takes each orbit,
//! surely or maybe, in the order FreeSWITCH hunts them.

use super::classify::{classify, is_callpark};
use super::hunt::{CondMatchers, evaluate};
use super::{Dialplan, Extension, FsContext, Test, fix};
use crate::automaton::{Dialect, Matcher};
use crate::{Certainty, Kind, LintError, Report, RuleAt, Source};

/// Checks the orbits dialled in `context`.
pub fn check(dp: &Dialplan, context: &str, report: &mut Report) -> Result<(), LintError> {
    // mod_dialplan_xml takes the first <context> whose name matches, ignoring case
    // (switch_xml_find_child, strcasecmp); another of the same name is never hunted.
    let same: Vec<&FsContext> = dp
        .contexts
        .iter()
        .filter(|c| c.name.eq_ignore_ascii_case(context))
        .collect();
    let Some(first) = same.first() else {
        return Err(LintError::Usage(format!(
            "no <context name=\"{context}\"> in the FreeSWITCH dialplan"
        )));
    };
    for other in &same[1..] {
        report.notes.push(format!(
            "<context name=\"{}\"> at {}:{} is never used: FreeSWITCH hunts only the first of that name ({}:{}); move its extensions there",
            other.name, other.file, other.line, first.file, first.line
        ));
    }
    let ctxs = [*first];
    let exts: Vec<&Extension> = ctxs.iter().flat_map(|c| &c.extensions).collect();
    report.rules += exts.len();
    // Per extension, per condition in document order (nested ones after their parent), the
    // matchers of its expressions (one per `<regex>` of a `regex="..."` condition).
    let mut matchers: Vec<Vec<CondMatchers>> = exts
        .iter()
        .map(|x| {
            x.all_conditions()
                .iter()
                .map(|c| match &c.test {
                    Test::Destination(e) | Test::Expanded(e) => {
                        vec![Some(Matcher::new(e, Dialect::Pcre))]
                    }
                    Test::Regexes { items, .. } => items
                        .iter()
                        .map(|i| i.expr.as_deref().map(|e| Matcher::new(e, Dialect::Pcre)))
                        .collect(),
                    _ => Vec::new(),
                })
                .collect()
        })
        .collect();
    let cps: Vec<bool> = exts.iter().map(|x| is_callpark(x)).collect();
    for ti in 0..report.targets.len() {
        let range = report.targets[ti].range.clone();
        let mut remaining = range.all();
        for (k, x) in exts.iter().enumerate() {
            if remaining.is_empty() {
                break;
            }
            let mut undecided = None;
            let o = evaluate(x, &mut matchers[k], &range, &mut undecided);
            let sure = o.sure.intersect(&remaining);
            let maybe = o.maybe.intersect(&remaining).difference(&sure);
            if cps[k] {
                remaining = remaining.difference(&sure);
                continue;
            }
            let at = RuleAt {
                source: Source::FreeSwitch,
                file: &x.file,
                line: x.line,
                rule: &x.name,
                scope: context,
            };
            if let Some(w) = undecided {
                report.add_finding(&at, Certainty::Undecided, ti, maybe.clone(), Some(w));
            } else {
                report.add_finding(&at, Certainty::MayCatch, ti, maybe, o.depends);
            }
            report.add_finding(&at, Certainty::Caught, ti, sure.clone(), None);
            remaining = remaining.difference(&sure);
        }
        let at = RuleAt {
            source: Source::FreeSwitch,
            file: &ctxs[0].file,
            line: ctxs[0].line,
            rule: "(no extension)",
            scope: context,
        };
        report.add_finding(
            &at,
            Certainty::Caught,
            ti,
            remaining,
            Some("no extension of this context takes these orbits".into()),
        );
    }
    let kinds: Vec<(Kind, String)> = exts.iter().map(|x| classify(x)).collect();
    fix::propose(dp, ctxs[0], context, &exts, &cps, &kinds, report);
    Ok(())
}
