//! Which numbers of a range a pattern matches, decided on automata.
//!
//! Patterns a DFA holds are decided on the lazy DFA of the pattern, in lock-step with the
//! range's digits (see `walk`): the cost grows with the number of digits and of DFA states, not
//! with the number of orbits, and the answer is the exact set, as maximal runs.
//!
//! Patterns that no DFA can hold (backreferences, look-around, atomic groups) are run with
//! fancy-regex on each orbit of a range of at most `MAX_ENUMERATE` orbits, and otherwise
//! reported as undecided.

mod range;
mod syntax;
mod walk;

use regex_automata::MatchKind;
use regex_automata::hybrid::dfa::DFA;
use regex_automata::nfa::thompson;
use regex_syntax::hir::Hir;
use thiserror::Error;

pub use self::range::NumRange;
use self::syntax::{collect_names, parse_hir, to_rust_syntax};
use self::walk::DfaState;
use super::runs::RunSet;

/// Largest range the fallbacks evaluate orbit by orbit.
pub(crate) const MAX_ENUMERATE: u64 = 1_000_000;
/// Largest number of separate runs one answer may have before the lint gives up on listing it.
pub(crate) const MAX_RUNS: usize = 100_000;
/// Room for the lazy DFA of one pattern; far above what dial-plan patterns need.
const DFA_CACHE_BYTES: usize = 8 << 20;

/// The regex dialect a pattern is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// .NET (Lync, Skype for Business, Teams normalization rules).
    DotNet,
    /// PCRE (FreeSWITCH conditions).
    Pcre,
    /// Already in Rust `regex` syntax (patterns the lint builds itself).
    Rust,
}

/// The span of each group of one match (group 0 is the match; `None`: did not take part).
pub(crate) type Groups = Vec<Option<(usize, usize)>>;

/// Why the lint could not decide a pattern against a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecided(pub String);

/// Why a pattern could not be compiled (`Matcher::new`): the text is what the lint reports.
#[derive(Debug, Error)]
pub enum MatcherError {
    /// The pattern parsed but its automaton could not be built.
    #[error(transparent)]
    Nfa(#[from] Box<thompson::BuildError>),
    /// The lazy DFA of the pattern could not be built.
    #[error(transparent)]
    Dfa(#[from] Box<regex_automata::hybrid::BuildError>),
    /// Neither the DFA engine nor fancy-regex reads the pattern.
    #[error("pattern `{pattern}` is not a regular expression the lint reads: {error}")]
    Unreadable {
        pattern: String,
        error: Box<fancy_regex::Error>,
    },
}

/// A pattern compiled for the lint.
pub struct Matcher {
    pub source: String,
    /// The pattern in Rust syntax.
    pub rust: String,
    kind: Kind,
}

enum Kind {
    Dfa {
        hir: Box<Hir>,
        dfa: Box<DFA>,
        state: Option<Box<DfaState>>,
        bytes: Option<Box<regex::bytes::Regex>>,
    },
    Fancy {
        re: Box<fancy_regex::Regex>,
        why: String,
    },
}

impl Matcher {
    /// Compiles `pattern`; an error is a pattern that neither engine accepts.
    pub fn new(pattern: &str, dialect: Dialect) -> Result<Matcher, MatcherError> {
        let rust = to_rust_syntax(pattern, dialect);
        match parse_hir(&rust) {
            Ok(hir) => {
                let nfa = thompson::Compiler::new()
                    .configure(
                        thompson::Config::new()
                            .utf8(false)
                            .which_captures(thompson::WhichCaptures::None),
                    )
                    .build_from_hir(&hir)
                    .map_err(Box::new)?;
                let dfa = DFA::builder()
                    .configure(
                        DFA::config()
                            .match_kind(MatchKind::All)
                            .cache_capacity(DFA_CACHE_BYTES)
                            .skip_cache_capacity_check(true)
                            .minimum_cache_clear_count(None),
                    )
                    .build_from_nfa(nfa)
                    .map_err(Box::new)?;
                Ok(Matcher {
                    source: pattern.to_string(),
                    rust,
                    kind: Kind::Dfa {
                        hir: Box::new(hir),
                        dfa: Box::new(dfa),
                        state: None,
                        bytes: None,
                    },
                })
            }
            Err(syntax_err) => {
                let re = fancy_regex::Regex::new(&rust).map_err(|e| MatcherError::Unreadable {
                    pattern: pattern.to_string(),
                    error: Box::new(e),
                })?;
                let why = match syntax_err.as_ref() {
                    regex_syntax::Error::Parse(e) => e.kind().to_string(),
                    other => other.to_string(),
                };
                Ok(Matcher {
                    source: pattern.to_string(),
                    rust,
                    kind: Kind::Fancy {
                        re: Box::new(re),
                        why,
                    },
                })
            }
        }
    }

    /// The parsed pattern, when it is one a DFA holds.
    pub(crate) fn hir(&self) -> Option<&Hir> {
        match &self.kind {
            Kind::Dfa { hir, .. } => Some(hir),
            Kind::Fancy { .. } => None,
        }
    }

    /// Whether the lint decides this pattern by automaton (rather than orbit by orbit).
    pub fn is_dfa(&self) -> bool {
        matches!(self.kind, Kind::Dfa { .. })
    }

    /// The numbers of `range` whose text the pattern matches somewhere (a search, as
    /// `Regex.IsMatch` / PCRE do; anchors in the pattern make it a whole-string match).
    pub fn matching(&mut self, range: &NumRange) -> Result<RunSet, Undecided> {
        match &mut self.kind {
            Kind::Dfa { dfa, state, .. } => {
                let st = state.get_or_insert_with(|| Box::new(DfaState::new(dfa)));
                walk::matching(dfa, st, range)
            }
            Kind::Fancy { re, why } => {
                if range.len() > MAX_ENUMERATE {
                    return Err(Undecided(format!(
                        "the pattern needs a backtracking engine ({why}) and range {range} holds {} orbits, more than {MAX_ENUMERATE} to try one by one",
                        range.len()
                    )));
                }
                let mut out = RunSet::new();
                for v in range.lo..=range.hi {
                    let t = range.text(v);
                    match re.is_match(&t) {
                        Ok(true) => out.push(v, v),
                        Ok(false) => {}
                        Err(e) => return Err(Undecided(format!("{e} on `{t}`"))),
                    }
                }
                Ok(out)
            }
        }
    }

    /// Every non-overlapping match in `text`, left to right, with the span of each group
    /// (group 0 is the match), as `Regex.Replace` visits them.
    pub fn captures(&mut self, text: &str) -> Result<Vec<Groups>, Undecided> {
        match &mut self.kind {
            Kind::Dfa { bytes, .. } => {
                if bytes.is_none() {
                    let re = regex::bytes::RegexBuilder::new(&self.rust)
                        .unicode(false)
                        .build()
                        .map_err(|e| Undecided(e.to_string()))?;
                    *bytes = Some(Box::new(re));
                }
                let re = bytes.as_ref().unwrap();
                Ok(re
                    .captures_iter(text.as_bytes())
                    .map(|c| {
                        (0..c.len())
                            .map(|i| c.get(i).map(|m| (m.start(), m.end())))
                            .collect()
                    })
                    .collect())
            }
            Kind::Fancy { re, .. } => {
                let mut out = Vec::new();
                for c in re.captures_iter(text) {
                    let c = c.map_err(|e| Undecided(format!("{e} on `{text}`")))?;
                    out.push(
                        (0..c.len())
                            .map(|i| c.get(i).map(|m| (m.start(), m.end())))
                            .collect(),
                    );
                }
                Ok(out)
            }
        }
    }

    /// Group names by index (index 0 is the whole match).
    pub(crate) fn group_names(&self) -> Vec<Option<String>> {
        match &self.kind {
            Kind::Dfa { hir, .. } => {
                let mut names = vec![None];
                collect_names(hir, &mut names);
                names
            }
            Kind::Fancy { re, .. } => re.capture_names().map(|n| n.map(String::from)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(p: &str, r: &NumRange) -> RunSet {
        let re = regex::Regex::new(p).unwrap();
        RunSet::from_sorted(
            (r.lo..=r.hi)
                .filter(|&v| re.is_match(&r.text(v)))
                .map(|v| (v, v)),
        )
    }

    #[test]
    fn pcre_quoting_is_literal_text() {
        assert_eq!(to_rust_syntax(r"^\Q*4000\E$", Dialect::Pcre), r"^\*4000$");
        // Unterminated: literal to the end, as in PCRE.
        assert_eq!(to_rust_syntax(r"^\Q*4.(", Dialect::Pcre), r"^\*4\.\(");
        let mut m = Matcher::new(r"^\Q*\E(70\d\d)$", Dialect::Pcre).unwrap();
        assert!(m.is_dfa());
        let r = NumRange::new("*", 4, 7000, 7099);
        assert_eq!(m.matching(&r).unwrap(), r.all());
    }

    #[test]
    fn matches_agree_with_search_on_small_ranges() {
        let r = NumRange::new("*", 3, 100, 999);
        for p in [
            r"^\*7\d\d$",
            r"^\*(7[0-4]\d)$",
            r"7",
            r"^\*?(\d{3})$",
            r"5$",
            r"^\*[1-9]\d{2}$",
            r"(?:00|11|22)",
            r"^\d+$",
            r"\*",
            r"^$",
        ] {
            let mut m = Matcher::new(p, Dialect::DotNet).unwrap();
            assert!(m.is_dfa());
            assert_eq!(m.matching(&r).unwrap(), brute(p, &r), "{p}");
        }
    }

    #[test]
    fn backreference_falls_back_to_enumeration_then_gives_up() {
        let mut m = Matcher::new(r"^(\d)\1", Dialect::DotNet).unwrap();
        assert!(!m.is_dfa());
        let small = NumRange::new("", 3, 100, 999);
        let got = m.matching(&small).unwrap();
        assert_eq!(got.count(), 90);
        assert!(got.contains(110) && got.contains(998) && !got.contains(101));
        let big = NumRange::new("", 9, 100_000_000, 999_999_999);
        assert!(m.matching(&big).unwrap_err().0.contains("backtracking"));
    }

    #[test]
    fn huge_range_is_decided_whole() {
        let mut m = Matcher::new(r"^(1\d{3})[0-4]\d{5}$", Dialect::DotNet).unwrap();
        let r = NumRange::new("", 10, 1_000_000_000, 1_999_999_999);
        let got = m.matching(&r).unwrap();
        assert_eq!(got.count(), 500_000_000);
        assert_eq!(got.runs().len(), 1000);
    }
}
