//! The lint behind `callpark lint`: does dial-plan normalization leave every orbit untouched?
//!
//! Each source (Lync/Skype/Teams normalization rules, Asterisk `extensions.conf`, FreeSWITCH
//! dialplan XML) is parsed from text into rules with file and line ([`lync`], [`asterisk`],
//! [`freeswitch`]), then checked against the orbit table by a pure engine: every pattern is
//! intersected with each orbit range on automata ([`automaton`]), the first-match-wins order of
//! the platform is applied to sets of runs ([`runs`]), and each orbit that a rule other than
//! callpark's takes becomes a finding with a fix that can be pasted ([`fix`], written with the
//! dial patterns of [`pattern`] and, for Asterisk, of [`asterisk::span_patterns`]). [`report`]
//! prints. The orbit table comes from `callpark-core`; reading it from callpark's
//! configuration, the command line and the exit code are the binary's (`src/cli/lint.rs`).
//!
//! # Example
//!
//! ```
//! use callpark_lint::{Certainty, Report, Target, lync, orbits_from_list, report};
//!
//! let table = orbits_from_list("*700-*799,5500-5599")?;
//! let mut found = Report::new(Target::from_table(&table));
//! // A Lync rule that turns every 4-digit number into an E.164 one takes 5500-5599 as well.
//! let rules = lync::parse(
//!     "New-CsVoiceNormalizationRule -Parent Global -Name Internal -Pattern '^(\\d{4})$' -Translation '+1555$1'",
//!     "rules.ps1",
//! )?;
//! lync::check(&rules, &mut found);
//! assert_eq!(found.findings.len(), 1);
//! let f = &found.findings[0];
//! assert_eq!((f.rule.as_str(), f.certainty, f.count()), ("Internal", Certainty::Caught, 100));
//! assert!(report::text(&found).contains("5500-5599"));
//! # Ok::<(), callpark_lint::LintError>(())
//! ```

pub mod asterisk;
pub mod automaton;
mod files;
pub mod fix;
pub mod freeswitch;
pub mod lync;
pub mod pattern;
pub mod report;
pub mod runs;

use std::fmt;

use thiserror::Error;

use automaton::NumRange;
use callpark_core::orbit::{OrbitRange, OrbitTable};
use runs::RunSet;

/// An input the lint could not read or parse (exit 2).
#[derive(Debug, Error)]
pub enum LintError {
    #[error("{file}: {msg}")]
    Read { file: String, msg: String },
    #[error("{file}:{line}: {msg}")]
    Parse {
        file: String,
        line: usize,
        msg: String,
    },
    #[error("orbits: {0}")]
    Orbits(String),
    #[error("{0}")]
    Usage(String),
}

impl LintError {
    pub fn parse(file: &str, line: usize, msg: impl Into<String>) -> LintError {
        LintError::Parse {
            file: file.to_string(),
            line,
            msg: msg.into(),
        }
    }
}

/// Which platform a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    Lync,
    Asterisk,
    FreeSwitch,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Lync => "lync",
            Source::Asterisk => "asterisk",
            Source::FreeSwitch => "freeswitch",
        }
    }
}

/// How sure a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Certainty {
    /// The rule takes these orbits.
    Caught,
    /// The rule takes them under conditions the lint cannot see (caller, time, channel).
    MayCatch,
    /// The lint could not decide; `reason` says why. Never counted as a pass.
    Undecided,
}

impl Certainty {
    pub fn as_str(self) -> &'static str {
        match self {
            Certainty::Caught => "caught",
            Certainty::MayCatch => "may catch",
            Certainty::Undecided => "undecided",
        }
    }
}

/// What the rule that takes the orbits is: something to protect the orbits from, or a real
/// destination that owns the same numbers. Decided from the rule itself (see each platform's
/// `classify`); when the lint is unsure it says `Catches`, which keeps the insertion fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Kind {
    /// A pattern that rewrites, routes onward or swallows numbers: callpark's rule goes in
    /// front of it (the fix).
    #[default]
    Catches,
    /// The orbit numbers are destinations (phones, an IVR, voicemail): putting callpark in
    /// front would take them away, so the fix is another orbit range.
    Conflicts,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Catches => "catches",
            Kind::Conflicts => "conflicts",
        }
    }
}

/// One orbit range to check, in the engine's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub range: NumRange,
}

impl Target {
    pub fn from_table(table: &OrbitTable) -> Vec<Target> {
        let mut t: Vec<Target> = table
            .ranges()
            .iter()
            .map(|r| Target {
                name: r.name.clone(),
                range: NumRange::from_span(&r.span),
            })
            .collect();
        t.sort_by(|a, b| {
            (&a.range.prefix, a.range.width, a.range.lo).cmp(&(
                &b.range.prefix,
                b.range.width,
                b.range.lo,
            ))
        });
        t
    }
}

/// A rule that takes orbits away from callpark.
#[derive(Debug, Clone)]
pub struct Finding {
    pub source: Source,
    pub file: String,
    pub line: usize,
    /// The rule's name, or its pattern when it has none.
    pub rule: String,
    /// The Lync dial plan, Asterisk context or FreeSWITCH context checked.
    pub scope: String,
    pub certainty: Certainty,
    /// Per target index, the orbits concerned.
    pub caught: Vec<(usize, RunSet)>,
    pub reason: Option<String>,
    /// Whether the orbits are to be protected from the rule or moved away from it.
    pub kind: Kind,
    /// What in the rule decided `kind` (printed as `why:`).
    pub kind_why: Option<String>,
    pub fix: String,
}

/// A rule as findings and protections name it: where it is and the scope it was checked in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RuleAt<'a> {
    pub source: Source,
    pub file: &'a str,
    pub line: usize,
    /// The rule's name, or its pattern when it has none.
    pub rule: &'a str,
    /// The Lync dial plan, Asterisk context or FreeSWITCH context checked.
    pub scope: &'a str,
}

/// Orbits that a rule keeps as they are, ahead of rules that would change them.
#[derive(Debug, Clone)]
pub struct Protection {
    pub source: Source,
    pub file: String,
    pub line: usize,
    pub rule: String,
    pub scope: String,
    pub kept: Vec<(usize, RunSet)>,
    /// The rules below it that would have changed some of these orbits.
    pub shields: Vec<String>,
}

/// Everything one lint run found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub targets: Vec<Target>,
    pub rules: usize,
    pub findings: Vec<Finding>,
    pub protections: Vec<Protection>,
    /// Things the user should know that are not findings (e.g. an option the lint models).
    pub notes: Vec<String>,
}

impl Report {
    pub fn new(targets: Vec<Target>) -> Report {
        Report {
            targets,
            ..Report::default()
        }
    }

    pub(crate) fn orbit_count(&self) -> u64 {
        self.targets.iter().map(|t| t.range.len()).sum()
    }

    /// The first and last orbit of a run of target `target`, as dialled (`*7000`, `*7049`).
    pub(crate) fn run_text(&self, target: usize, lo: u64, hi: u64) -> (String, String) {
        let r = &self.targets[target].range;
        (r.text(lo), r.text(hi))
    }

    /// Adds orbits to the finding with the same rule, scope and certainty, or a new one.
    pub(crate) fn add_finding(
        &mut self,
        at: &RuleAt,
        certainty: Certainty,
        target: usize,
        runs: RunSet,
        reason: Option<String>,
    ) {
        if runs.is_empty() {
            return;
        }
        if let Some(f) = self.findings.iter_mut().find(|f| {
            f.source == at.source
                && f.file == at.file
                && f.line == at.line
                && f.rule == at.rule
                && f.scope == at.scope
                && f.certainty == certainty
        }) {
            merge_into(&mut f.caught, target, runs);
            if f.reason.is_none() {
                f.reason = reason;
            }
            return;
        }
        self.findings.push(Finding {
            source: at.source,
            file: at.file.to_string(),
            line: at.line,
            rule: at.rule.to_string(),
            scope: at.scope.to_string(),
            certainty,
            caught: vec![(target, runs)],
            reason,
            kind: Kind::Catches,
            kind_why: None,
            fix: String::new(),
        });
    }

    /// Adds orbits to the protection by the same rule in the same scope, or a new one.
    pub(crate) fn add_protection(&mut self, at: &RuleAt, target: usize, runs: RunSet) {
        if runs.is_empty() {
            return;
        }
        if let Some(p) = self.protections.iter_mut().find(|p| {
            p.source == at.source && p.file == at.file && p.line == at.line && p.scope == at.scope
        }) {
            merge_into(&mut p.kept, target, runs);
            return;
        }
        self.protections.push(Protection {
            source: at.source,
            file: at.file.to_string(),
            line: at.line,
            rule: at.rule.to_string(),
            scope: at.scope.to_string(),
            kept: vec![(target, runs)],
            shields: Vec::new(),
        });
    }
}

fn merge_into(list: &mut Vec<(usize, RunSet)>, target: usize, runs: RunSet) {
    if let Some(e) = list.iter_mut().find(|(t, _)| *t == target) {
        e.1 = e.1.union(&runs);
    } else {
        list.push((target, runs));
        list.sort_by_key(|(t, _)| *t);
    }
}

impl Finding {
    pub fn count(&self) -> u64 {
        self.caught.iter().map(|(_, r)| r.count()).sum()
    }
}

/// Up to `n` ranges like `range` (same prefix, width and size), nearest first, that overlap
/// none of `avoid` (the other orbit ranges) and that `is_free` accepts: where to move orbits
/// whose numbers are taken by destinations. Candidates starting with 0 are skipped: an orbit
/// never does (`orbit::Span`).
pub(crate) fn free_ranges(
    range: &NumRange,
    avoid: &[NumRange],
    n: usize,
    mut is_free: impl FnMut(&NumRange) -> bool,
) -> Vec<NumRange> {
    let size = range.len();
    // Steps of the power of ten that holds the range keep its look: 701-799 moves to
    // 601-699 and 801-899, not to 800-898.
    let step = (0..=range.width)
        .map(|k| 10u64.pow(k))
        .find(|&p| p >= size)
        .unwrap_or(size);
    let top = 10u64.pow(range.width) - 1;
    let leading_zero = |v: u64| v / 10u64.pow(range.width - 1) == 0;
    let mut out = Vec::new();
    // Tried both ways, one step at a time; 50 steps is plenty for a suggestion.
    for k in 1..=50u64 {
        let below = range.lo.checked_sub(k * step);
        let above = range.lo + k * step;
        let cands = [below, (above + size - 1 <= top).then_some(above)];
        for lo in cands.into_iter().flatten() {
            if out.len() >= n || leading_zero(lo) {
                continue;
            }
            let c = NumRange::new(&range.prefix, range.width, lo, lo + size - 1);
            let overlaps = avoid.iter().any(|a| {
                a.prefix == c.prefix && a.width == c.width && a.lo <= c.hi && c.lo <= a.hi
            });
            if !overlaps && is_free(&c) {
                out.push(c);
            }
        }
    }
    out
}

/// The sentence of a conflict's fix: the free ranges found, or what to do without one.
pub(crate) fn move_fix(range: &NumRange, free: &[NumRange], scope: &str) -> String {
    if free.is_empty() {
        return format!(
            "no insertion fix: these numbers are destinations in {scope}; move the orbits to a range no extension uses, or renumber those extensions"
        );
    }
    let list: Vec<String> = free.iter().map(|r| r.to_string()).collect();
    format!(
        "no insertion fix: these numbers are destinations in {scope}; use another orbit range instead of {range}, e.g. {} (no destination there), or renumber those extensions",
        list.join(", ")
    )
}

/// Builds the orbit table of `--orbits "*700-*799,5500-5599"`; ranges are named by their text.
pub fn orbits_from_list(list: &str) -> Result<OrbitTable, LintError> {
    let mut ranges = Vec::new();
    for part in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let span = part
            .parse()
            .map_err(|e: callpark_core::orbit::SpanParseError| LintError::Orbits(e.to_string()))?;
        ranges.push(OrbitRange {
            name: part.to_string(),
            span,
            pool: "lint".into(),
            lot: None,
        });
    }
    if ranges.is_empty() {
        return Err(LintError::Orbits("--orbits names no range".into()));
    }
    OrbitTable::new(ranges).map_err(|e| LintError::Orbits(e.to_string()))
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.range, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ranges_keep_the_shape_and_skip_what_is_taken() {
        let r = NumRange::new("", 4, 1100, 1199);
        let other = NumRange::new("", 4, 1200, 1299);
        // 1000-1099 is taken, 1200-1299 another orbit range, 0900-0999 starts with 0.
        let free = free_ranges(&r, std::slice::from_ref(&other), 3, |c| c.lo != 1000);
        let got: Vec<String> = free.iter().map(|c| c.to_string()).collect();
        assert_eq!(got, ["1300-1399", "1400-1499", "1500-1599"]);
        let star = NumRange::new("*", 2, 70, 79);
        let got: Vec<String> = free_ranges(&star, &[], 2, |_| true)
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(got, ["*60-*69", "*80-*89"]);
        assert!(move_fix(&star, &[], "[a]").contains("renumber those extensions"));
    }
}
