//! Printing a lint report as text or as one JSON object.

use std::fmt::Write;

use serde_json::{Value, json};

use super::{Finding, Report};

/// The rule name of a finding for orbits that no rule takes (callpark's extension missing).
pub(crate) const NO_EXTENSION: &str = "(no extension)";

/// The caught runs of a finding as (first, last) texts, ordered by target.
pub fn caught_texts(
    report: &Report,
    list: &[(usize, super::runs::RunSet)],
) -> Vec<(String, String)> {
    list.iter()
        .flat_map(|(t, s)| {
            s.runs()
                .iter()
                .map(move |&(a, b)| report.run_text(*t, a, b))
        })
        .collect()
}

fn example(report: &Report, f: &Finding) -> String {
    f.caught
        .iter()
        .find_map(|(t, s)| s.first().map(|v| report.targets[*t].range.text(v)))
        .unwrap_or_default()
}

fn runs_line(runs: &[(String, String)]) -> String {
    const SHOWN: usize = 12;
    let mut s: Vec<String> = runs
        .iter()
        .take(SHOWN)
        .map(|(a, b)| {
            if a == b {
                a.clone()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    if runs.len() > SHOWN {
        s.push(format!("... ({} runs in all)", runs.len()));
    }
    s.join(", ")
}

/// The JSON object of the issue: `orbits`, `rules`, `findings`; plus `protected` and `notes`.
pub fn json(report: &Report) -> Value {
    let findings: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let caught: Vec<Value> = caught_texts(report, &f.caught)
                .into_iter()
                .map(|(a, b)| json!({"first": a, "last": b}))
                .collect();
            let mut o = json!({
                "source": f.source.as_str(),
                "file": f.file,
                "line": f.line,
                "rule": f.rule,
                "scope": f.scope,
                "certainty": f.certainty.as_str(),
                "caught": caught,
                "count": f.count(),
                "example": example(report, f),
                "kind": f.kind.as_str(),
                "fix": f.fix,
            });
            if let Some(w) = &f.kind_why {
                o["why"] = json!(w);
            }
            if let Some(r) = &f.reason {
                o["reason"] = json!(r);
            }
            o
        })
        .collect();
    let protected: Vec<Value> = report
        .protections
        .iter()
        .map(|p| {
            let kept: Vec<Value> = caught_texts(report, &p.kept)
                .into_iter()
                .map(|(a, b)| json!({"first": a, "last": b}))
                .collect();
            json!({
                "source": p.source.as_str(),
                "file": p.file,
                "line": p.line,
                "rule": p.rule,
                "scope": p.scope,
                "kept": kept,
                "count": p.kept.iter().map(|(_, s)| s.count()).sum::<u64>(),
                "ahead_of": p.shields,
            })
        })
        .collect();
    json!({
        "orbits": report.orbit_count(),
        "rules": report.rules,
        "findings": findings,
        "protected": protected,
        "notes": report.notes,
    })
}

/// The human-readable report.
pub fn text(report: &Report) -> String {
    let mut s = String::new();
    let ranges: Vec<String> = report.targets.iter().map(|t| t.range.to_string()).collect();
    let _ = writeln!(
        s,
        "checked {} orbits ({}) against {} rules",
        report.orbit_count(),
        ranges.join(", "),
        report.rules
    );
    for f in &report.findings {
        let runs = caught_texts(report, &f.caught);
        let conflict = f.kind == super::Kind::Conflicts;
        let what = match (f.certainty, conflict) {
            (super::Certainty::Caught, false) => "catches",
            (super::Certainty::Caught, true) => "conflicts with",
            (super::Certainty::MayCatch, false) => "may catch",
            (super::Certainty::MayCatch, true) => "may conflict with",
            (super::Certainty::Undecided, _) => "undecided for",
        };
        let plural = if f.count() == 1 { "" } else { "s" };
        if f.rule == NO_EXTENSION {
            // Nothing catches these orbits: what is missing is callpark's own extension.
            let _ = writeln!(
                s,
                "\n{}:{}: {} {}: no extension routes {} orbit{plural} to callpark: {}",
                f.file,
                f.line,
                f.source.as_str(),
                f.scope,
                f.count(),
                runs_line(&runs),
            );
        } else {
            let _ = writeln!(
                s,
                "\n{}:{}: {} {} `{}` {what} {} orbit{plural}: {} (e.g. {})",
                f.file,
                f.line,
                f.source.as_str(),
                f.scope,
                f.rule,
                f.count(),
                runs_line(&runs),
                example(report, f)
            );
        }
        if let Some(w) = &f.kind_why {
            let _ = writeln!(s, "  why: {w}");
        }
        if let Some(r) = &f.reason {
            let _ = writeln!(
                s,
                "  {}: {r}",
                if f.kind_why.is_some() { "also" } else { "why" }
            );
        }
        if !f.fix.is_empty() {
            let mut lines = f.fix.lines();
            if let Some(first) = lines.next() {
                let _ = writeln!(s, "  fix: {first}");
            }
            for l in lines {
                let _ = writeln!(s, "       {l}");
            }
        }
    }
    for p in &report.protections {
        if p.shields.is_empty() {
            continue;
        }
        let runs = caught_texts(report, &p.kept);
        let _ = writeln!(
            s,
            "\n{}:{}: safe: {} {} `{}` keeps {} ahead of {}",
            p.file,
            p.line,
            p.source.as_str(),
            p.scope,
            p.rule,
            runs_line(&runs),
            p.shields
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for n in &report.notes {
        let _ = writeln!(s, "\nnote: {n}");
    }
    let n = report.findings.len();
    let _ = writeln!(
        s,
        "\n{}",
        if n == 0 {
            "no orbit is caught".to_string()
        } else {
            format!("{n} finding{}", if n == 1 { "" } else { "s" })
        }
    );
    s
}
