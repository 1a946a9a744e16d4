//! Checking each dial plan against the orbit table, rules in the order they apply, and the
//! protecting rule proposed as the fix.

use super::{Compiled, LyncRule, dial_plans};
use crate::automaton::{NumRange, Undecided};
use crate::fix;
use crate::runs::RunSet;
use crate::{Certainty, Report, RuleAt, Source};

/// Checks every dial plan of `rules` against the report's targets.
pub fn check(rules: &[LyncRule], report: &mut Report) {
    report.rules += rules.len();
    for r in rules {
        if let Some(w) = &r.warning {
            report
                .notes
                .push(format!("{}:{}: rule `{}`: {w}", r.file, r.line, r.name));
        }
    }
    for (plan, list) in dial_plans(rules) {
        let mut compiled: Vec<Compiled> = list.iter().map(|r| Compiled::new(r)).collect();
        for ti in 0..report.targets.len() {
            let range = report.targets[ti].range.clone();
            check_plan(&plan, &mut compiled, ti, &range, report);
        }
    }
    for f in report
        .findings
        .iter_mut()
        .filter(|f| f.source == Source::Lync && f.fix.is_empty())
    {
        f.fix = lync_fix(f, &report.targets, rules);
        // A normalization rule rewrites numbers: there is no destination to conflict with.
        f.kind_why = Some(
            "a normalization rule rewrites the number before routing: callpark's rule goes in front of it"
                .into(),
        );
    }
}

fn check_plan(
    plan: &str,
    rules: &mut [Compiled],
    ti: usize,
    range: &NumRange,
    report: &mut Report,
) {
    let mut remaining = range.all();
    let mut kept_by: Vec<(usize, RunSet)> = Vec::new();
    for (ri, c) in rules.iter_mut().enumerate() {
        if remaining.is_empty() {
            break;
        }
        let label = c.label();
        let r = c.rule;
        let at = RuleAt {
            source: Source::Lync,
            file: &r.file,
            line: r.line,
            rule: &label,
            scope: plan,
        };
        let finding = |report: &mut Report, certainty, set: RunSet, why: Option<String>| {
            report.add_finding(&at, certainty, ti, set, why)
        };
        // A pattern that does not compile, or whose answer the automaton cannot give, leaves
        // what is still unclaimed undecided: never passed.
        let matched = match &mut c.matcher {
            Ok(m) => m.matching(range).map_err(|Undecided(why)| why),
            Err(e) => Err(e.to_string()),
        };
        let hit = match matched {
            Ok(h) => h.intersect(&remaining),
            Err(why) => {
                finding(report, Certainty::Undecided, remaining.clone(), Some(why));
                continue;
            }
        };
        if hit.is_empty() {
            continue;
        }
        match c.split(range, &hit) {
            Ok((changed, kept)) => {
                finding(report, Certainty::Caught, changed, None);
                if !kept.is_empty() {
                    report.add_protection(&at, ti, kept.clone());
                    kept_by.push((ri, kept));
                }
            }
            Err(Undecided(why)) => {
                finding(report, Certainty::Undecided, hit.clone(), Some(why));
            }
        }
        remaining = remaining.difference(&hit);
    }
    // Rules below a protecting rule that would have changed what it kept: say so.
    for (ki, kept) in kept_by {
        let (head, tail) = rules.split_at_mut(ki + 1);
        let protector = &head[ki];
        for c in tail.iter_mut() {
            let Ok(m) = &mut c.matcher else { continue };
            let Ok(h) = m.matching(range) else { continue };
            let would = h.intersect(&kept);
            if would.is_empty() {
                continue;
            }
            let changes = match c.split(range, &would) {
                Ok((ch, _)) => !ch.is_empty(),
                Err(_) => true,
            };
            if changes {
                let name = c.label();
                if let Some(p) = report.protections.iter_mut().find(|p| {
                    p.source == Source::Lync
                        && p.file == protector.rule.file
                        && p.line == protector.rule.line
                        && p.scope == plan
                }) && !p.shields.contains(&name)
                {
                    p.shields.push(name);
                }
            }
        }
    }
}

fn ps_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A protecting rule placed right above the catching one.
fn lync_fix(f: &crate::Finding, targets: &[crate::Target], rules: &[LyncRule]) -> String {
    let parts = fix::caught_parts(f, targets);
    let (pattern, translation) = fix::protecting_pattern(&parts);
    let names: Vec<String> = parts
        .iter()
        .flat_map(|(r, s)| {
            s.runs().iter().map(move |&(a, b)| {
                if a == b {
                    r.text(a)
                } else {
                    format!("{}-{}", r.text(a), r.text(b))
                }
            })
        })
        .collect();
    let mut name = format!("Keep park orbits {}", names.join(","));
    if name.len() > 60 {
        name = "Keep park orbits".into();
    }
    let priority = rules
        .iter()
        .find(|r| {
            r.file == f.file && r.line == f.line && r.dial_plan.eq_ignore_ascii_case(&f.scope)
        })
        .map(|r| r.priority)
        .unwrap_or(0);
    format!(
        "New-CsVoiceNormalizationRule -Parent {} -Name {} -Pattern {} -Translation {} -Priority {priority}   # above rule '{}'",
        ps_quote(&f.scope),
        ps_quote(&name),
        ps_quote(&pattern),
        ps_quote(&translation),
        f.rule
    )
}
