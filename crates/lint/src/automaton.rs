//! Which numbers of a range a pattern matches, decided on automata.
//!
//! A range of orbits is the language `prefix · [lo, hi]` over fixed-width decimal strings. Its
//! automaton is the usual digit automaton with two "still on the bound" flags. We walk it in
//! lock-step with the lazy DFA of the pattern: wherever both flags are off, the rest of the
//! subtree depends only on (DFA state, digits left), so that subtree is computed once, kept as
//! runs, and reused; a subtree in which the DFA is already dead or has already seen a match is
//! one run at once. So the cost grows with the number of digits and of DFA states, not with the
//! number of orbits, and the answer is the exact set, as maximal runs.
//!
//! Patterns that no DFA can hold (backreferences, look-around, atomic groups) are run with
//! fancy-regex on each orbit of a range of at most `MAX_ENUMERATE` orbits, and otherwise
//! reported as undecided.

use std::collections::HashMap;
use std::rc::Rc;

use regex_automata::hybrid::LazyStateID;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson;
use regex_automata::util::start;
use regex_automata::{Anchored, MatchKind};
use regex_syntax::hir::Hir;
use thiserror::Error;

use super::runs::RunSet;
use callpark_core::orbit::Span;

/// Largest range the fallbacks evaluate orbit by orbit.
pub(crate) const MAX_ENUMERATE: u64 = 1_000_000;
/// Largest number of separate runs one answer may have before the lint gives up on listing it.
pub(crate) const MAX_RUNS: usize = 100_000;
/// Room for the lazy DFA of one pattern; far above what dial-plan patterns need.
const DFA_CACHE_BYTES: usize = 8 << 20;

/// A run of fixed-width numbers after a fixed prefix: `prefix` + `lo..=hi` written with
/// `width` digits. An orbit range is one; the engine also takes wider ones (10^9 numbers).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NumRange {
    pub prefix: String,
    pub width: u32,
    pub lo: u64,
    pub hi: u64,
}

impl NumRange {
    pub fn new(prefix: &str, width: u32, lo: u64, hi: u64) -> NumRange {
        assert!(width <= 18 && lo <= hi && hi < 10u64.pow(width));
        NumRange {
            prefix: prefix.to_string(),
            width,
            lo,
            hi,
        }
    }

    pub(crate) fn from_span(span: &Span) -> NumRange {
        NumRange::new(
            span.first.prefix().as_str(),
            span.first.digits(),
            u64::from(span.first.value()),
            u64::from(span.last.value()),
        )
    }

    pub fn len(&self) -> u64 {
        self.hi - self.lo + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The dialled string for value `v`.
    pub fn text(&self, v: u64) -> String {
        format!("{}{:0w$}", self.prefix, v, w = self.width as usize)
    }

    pub fn all(&self) -> RunSet {
        RunSet::single(self.lo, self.hi)
    }
}

impl std::fmt::Display for NumRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.text(self.lo))
        } else {
            write!(f, "{}-{}", self.text(self.lo), self.text(self.hi))
        }
    }
}

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

struct DfaState {
    cache: Cache,
    clears: usize,
    /// Runs (as offsets) of the free subtree of `digits` digits entered in a DFA state.
    memo: HashMap<(LazyStateID, u32), Rc<RunSet>>,
}

/// A walk position: a live DFA state, or one of the two states whose subtree is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    Dead,
    Hit,
    Live(LazyStateID),
}

/// Rewrites the dialect's syntax into Rust's where they only differ in spelling.
fn to_rust_syntax(p: &str, dialect: Dialect) -> String {
    if dialect == Dialect::Rust {
        return p.to_string();
    }
    let mut out = String::with_capacity(p.len());
    let mut chars = p.chars().peekable();
    let mut in_class = false;
    let mut quote_name = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(n) = chars.next() else {
                    out.push('\\');
                    break;
                };
                // PCRE's `\Q...\E`: everything up to `\E` (or the end) is literal text.
                if n == 'Q' && dialect == Dialect::Pcre {
                    while let Some(q) = chars.next() {
                        if q == '\\' && chars.peek() == Some(&'E') {
                            chars.next();
                            break;
                        }
                        out.push_str(&regex_syntax::escape(q.encode_utf8(&mut [0; 4])));
                    }
                    continue;
                }
                // `\Z` is "end, or before a final newline"; orbits hold no newline.
                if n == 'Z' && !in_class {
                    out.push_str("\\z");
                } else {
                    out.push('\\');
                    out.push(n);
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                if chars.peek() == Some(&'^') {
                    out.push(chars.next().unwrap());
                }
                if chars.peek() == Some(&']') {
                    out.push(chars.next().unwrap());
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            '(' if !in_class && dialect == Dialect::DotNet => {
                // .NET also spells named groups `(?'name'...)`.
                out.push(c);
                if chars.peek() == Some(&'?') {
                    out.push(chars.next().unwrap());
                    if chars.peek() == Some(&'\'') {
                        chars.next();
                        out.push('<');
                        quote_name = true;
                    }
                }
            }
            '\'' if quote_name => {
                out.push('>');
                quote_name = false;
            }
            _ => out.push(c),
        }
    }
    out
}

fn parse_hir(rust: &str) -> Result<Hir, Box<regex_syntax::Error>> {
    regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(rust)
        .map_err(Box::new)
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
                let st = state.get_or_insert_with(|| {
                    Box::new(DfaState {
                        cache: dfa.create_cache(),
                        clears: 0,
                        memo: HashMap::new(),
                    })
                });
                let mut w = Walk {
                    dfa,
                    st,
                    range,
                    lo: digits_of(range.lo, range.width),
                    hi: digits_of(range.hi, range.width),
                };
                w.run()
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

fn collect_names(h: &Hir, names: &mut Vec<Option<String>>) {
    use regex_syntax::hir::HirKind;
    match h.kind() {
        HirKind::Capture(c) => {
            let i = c.index as usize;
            if names.len() <= i {
                names.resize(i + 1, None);
            }
            names[i] = c.name.as_deref().map(String::from);
            collect_names(&c.sub, names);
        }
        HirKind::Concat(v) | HirKind::Alternation(v) => {
            for s in v {
                collect_names(s, names);
            }
        }
        HirKind::Repetition(r) => collect_names(&r.sub, names),
        _ => {}
    }
}

fn digits_of(v: u64, width: u32) -> Vec<u8> {
    format!("{v:0w$}", w = width as usize).into_bytes()
}

struct Walk<'a> {
    dfa: &'a DFA,
    st: &'a mut DfaState,
    range: &'a NumRange,
    lo: Vec<u8>,
    hi: Vec<u8>,
}

impl Walk<'_> {
    fn run(&mut self) -> Result<RunSet, Undecided> {
        if self.st.cache.clear_count() != self.st.clears {
            self.st.memo.clear();
            self.st.clears = self.st.cache.clear_count();
        }
        let cfg = start::Config::new().anchored(Anchored::No);
        let id = self
            .dfa
            .start_state(&mut self.st.cache, &cfg)
            .map_err(|e| Undecided(e.to_string()))?;
        let mut s = St::Live(id);
        for &b in self.range.prefix.as_bytes() {
            s = self.step(s, b)?;
        }
        let mut out = RunSet::new();
        self.tight(s, 0, true, true, 0, &mut out)?;
        Ok(out)
    }

    fn step(&mut self, s: St, b: u8) -> Result<St, Undecided> {
        let St::Live(id) = s else { return Ok(s) };
        let n = self
            .dfa
            .next_state(&mut self.st.cache, id, b)
            .map_err(|e| Undecided(e.to_string()))?;
        if self.st.cache.clear_count() != self.st.clears {
            // State ids held up the stack are stale once the cache was cleared.
            return Err(Undecided(
                "the pattern's DFA outgrew its cache; simplify the pattern".into(),
            ));
        }
        // Match states come one byte late: a match state here means a match ended before `b`,
        // and a search that found a match stays matched whatever follows.
        Ok(if n.is_match() {
            St::Hit
        } else if n.is_dead() {
            St::Dead
        } else if n.is_quit() {
            return Err(Undecided(format!("the DFA gave up on byte {b:#x}")));
        } else {
            St::Live(n)
        })
    }

    fn accepts_at_end(&mut self, s: St) -> Result<bool, Undecided> {
        match s {
            St::Dead => Ok(false),
            St::Hit => Ok(true),
            St::Live(id) => {
                let n = self
                    .dfa
                    .next_eoi_state(&mut self.st.cache, id)
                    .map_err(|e| Undecided(e.to_string()))?;
                Ok(n.is_match())
            }
        }
    }

    /// Walks the subtree at digit `pos` where the digits so far equal the bound(s) whose flag
    /// is set; `base` is the value of the digits so far, shifted into place.
    fn tight(
        &mut self,
        s: St,
        pos: usize,
        lo_t: bool,
        hi_t: bool,
        base: u64,
        out: &mut RunSet,
    ) -> Result<(), Undecided> {
        let r = self.range.width - pos as u32;
        let p = 10u64.pow(r);
        let sub_lo = if lo_t { self.range.lo % p } else { 0 };
        let sub_hi = if hi_t { self.range.hi % p } else { p - 1 };
        match s {
            St::Dead => return Ok(()),
            St::Hit => {
                out.push(base + sub_lo, base + sub_hi);
                return Ok(());
            }
            St::Live(_) => {}
        }
        if !lo_t && !hi_t {
            let sub = self.free(s, r)?;
            for &(a, b) in sub.runs() {
                out.push(base + a, base + b);
            }
            return check_size(out);
        }
        if r == 0 {
            if self.accepts_at_end(s)? {
                out.push(base, base);
            }
            return Ok(());
        }
        let unit = p / 10;
        let dlo = if lo_t { self.lo[pos] - b'0' } else { 0 };
        let dhi = if hi_t { self.hi[pos] - b'0' } else { 9 };
        for d in dlo..=dhi {
            let c = self.step(s, b'0' + d)?;
            self.tight(
                c,
                pos + 1,
                lo_t && d == dlo,
                hi_t && d == dhi,
                base + u64::from(d) * unit,
                out,
            )?;
        }
        check_size(out)
    }

    /// Offsets in `[0, 10^r)` of the `r`-digit suffixes accepted from state `s`.
    fn free(&mut self, s: St, r: u32) -> Result<Rc<RunSet>, Undecided> {
        let id = match s {
            St::Dead => return Ok(Rc::new(RunSet::new())),
            St::Hit => return Ok(Rc::new(RunSet::single(0, 10u64.pow(r) - 1))),
            St::Live(id) => id,
        };
        if let Some(hit) = self.st.memo.get(&(id, r)) {
            return Ok(hit.clone());
        }
        let mut out = RunSet::new();
        if r == 0 {
            if self.accepts_at_end(s)? {
                out.push(0, 0);
            }
        } else {
            let unit = 10u64.pow(r - 1);
            for d in 0..10u8 {
                let c = self.step(s, b'0' + d)?;
                let sub = self.free(c, r - 1)?;
                for &(a, b) in sub.runs() {
                    out.push(u64::from(d) * unit + a, u64::from(d) * unit + b);
                }
                check_size(&out)?;
            }
        }
        let out = Rc::new(out);
        self.st.memo.insert((id, r), out.clone());
        Ok(out)
    }
}

fn check_size(out: &RunSet) -> Result<(), Undecided> {
    if out.runs().len() > MAX_RUNS {
        return Err(Undecided(format!(
            "the orbits it matches fall apart into more than {MAX_RUNS} separate runs"
        )));
    }
    Ok(())
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
    fn dotnet_spellings_become_rust() {
        assert_eq!(
            to_rust_syntax(r"^(?'ext'\d{4})\Z", Dialect::DotNet),
            r"^(?<ext>\d{4})\z"
        );
        assert_eq!(to_rust_syntax(r"[\Z']", Dialect::DotNet), r"[\Z']");
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
