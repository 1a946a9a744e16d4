//! Asterisk's extension pattern syntax, read and written in one place.
//!
//! A pattern is `_` and then, position by position, a character of its own, `X` (0-9), `Z`
//! (1-9), `N` (2-9), a set `[...]` of characters and ranges, `.` (one character or more) or `!`
//! (none or more); `-` is ignored everywhere. Reading ([`exten_regex`]) turns an extension name
//! into the regex of what Asterisk's matcher takes, which the lint checks `extensions.conf`
//! with; writing ([`span_patterns`]) turns a run of orbits into the patterns that take exactly
//! it, which the generated include (`callpark dialplan asterisk`) and the lint's fixes are
//! made of. Keeping both here keeps them agreeing (the tests below hold one to the other). The
//! order in which Asterisk tries patterns is `order.rs`'s.

use callpark_core::orbit::Span;

use crate::automaton::{Dialect, Matcher, NumRange};
use crate::pattern::{DigitClass, range_pieces};
use crate::runs::RunSet;

/// How an Asterisk pattern writes the classes 1-9 and 2-9, for which Asterisk has letters.
/// Asterisk reads both spellings alike; each output keeps the one it has been shipped with, so
/// files already deployed and the lines the docs quote stay the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Letters {
    /// `Z` and `N`: the lint's fixes (and `normalization/asterisk/callpark-orbits.conf`).
    Short,
    /// `[1-9]` and `[2-9]`: the generated include (`dialplan/asterisk/callpark.conf`).
    Brackets,
}

/// The Asterisk extension for one piece after `prefix`: a plain extension when every class is
/// one digit, else a `_` pattern (`X` for 0-9, `[a-b]` for other ranges).
fn write_piece(prefix: &str, piece: &[DigitClass], letters: Letters) -> String {
    let mut s = prefix.to_string();
    let mut literal = true;
    for &c in piece {
        match (c, letters) {
            ((a, b), _) if a == b => {
                s.push(char::from(b'0' + a));
                continue;
            }
            ((0, 9), _) => s.push('X'),
            ((1, 9), Letters::Short) => s.push('Z'),
            ((2, 9), Letters::Short) => s.push('N'),
            ((a, b), _) => s.push_str(&format!("[{a}-{b}]")),
        }
        literal = false;
    }
    if literal { s } else { format!("_{s}") }
}

/// The Asterisk extensions that together match exactly `prefix` + `[lo, hi]`, each number
/// written with `width` digits.
pub(crate) fn asterisk_patterns(
    prefix: &str,
    width: u32,
    lo: u64,
    hi: u64,
    letters: Letters,
) -> Vec<String> {
    range_pieces(width, lo, hi)
        .iter()
        .map(|p| write_piece(prefix, p, letters))
        .collect()
}

/// The Asterisk extensions that together match exactly the orbits of `span`.
pub fn span_patterns(span: &Span, letters: Letters) -> Vec<String> {
    let r = NumRange::from_span(span);
    asterisk_patterns(&r.prefix, r.width, r.lo, r.hi, letters)
}

/// The regex (whole string) matching what `_extension_match_core` matches; `None` when the
/// extension can match nothing (a `[` without `]`).
pub(super) fn exten_regex(name: &str) -> Option<String> {
    let mut s = String::from("^");
    let Some(p) = name.strip_prefix('_') else {
        for c in name.chars().filter(|&c| c != '-') {
            s.push_str(&regex_syntax::escape(&c.to_string()));
        }
        s.push('$');
        return Some(s);
    };
    let b = p.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'-' => {}
            b'/' => break,
            b'x' | b'X' => s.push_str("[0-9]"),
            b'z' | b'Z' => s.push_str("[1-9]"),
            b'n' | b'N' => s.push_str("[2-9]"),
            // `.` and `!` end the match: whatever follows in the pattern is never looked at.
            b'.' => return Some(s + "(?s:.)+"),
            b'!' => return Some(s + "(?s:.)*"),
            b'[' => {
                let end = b[i + 1..].iter().position(|&c| c == b']')? + i + 1;
                let set = &b[i + 1..end];
                if !set.is_empty() {
                    let mut class = String::from("[");
                    let mut k = 0;
                    while k < set.len() {
                        if k + 2 < set.len() && set[k + 1] == b'-' {
                            if set[k] <= set[k + 2] {
                                class.push_str(&format!("\\x{:02x}-\\x{:02x}", set[k], set[k + 2]));
                            }
                            k += 3;
                        } else {
                            class.push_str(&format!("\\x{:02x}", set[k]));
                            k += 1;
                        }
                    }
                    if class == "[" {
                        return None;
                    }
                    class.push(']');
                    s.push_str(&class);
                }
                i = end;
            }
            c => s.push_str(&regex_syntax::escape(&(c as char).to_string())),
        }
        i += 1;
    }
    s.push('$');
    Some(s)
}

/// `RunSet` of the numbers of `range` an extension name matches (for tests and tools).
pub fn exten_matches(name: &str, range: &NumRange) -> RunSet {
    exten_regex(name)
        .and_then(|r| Matcher::new(&r, Dialect::Rust).ok())
        .and_then(|mut m| m.matching(range).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use callpark_core::orbit::{Orbit, Prefix};
    use proptest::prelude::*;

    proptest! {
        /// The patterns written for a run match each number of the run exactly once, nothing
        /// else of its width, and nothing one digit longer (counted number by number, so
        /// short widths only).
        #[test]
        fn patterns_written_for_a_run_read_back_as_exactly_that_run(
            prefix in prop::sample::select(vec!["", "*", "#", "*7", "55"]),
            width in 1u32..=4,
            a in 0u64..10_000,
            b in 0u64..10_000,
            short in any::<bool>(),
        ) {
            let top = 10u64.pow(width) - 1;
            let (lo, hi) = (a.min(b) % (top + 1), a.max(b) % (top + 1));
            let (lo, hi) = (lo.min(hi), lo.max(hi));
            let letters = if short { Letters::Short } else { Letters::Brackets };
            let written = asterisk_patterns(prefix, width, lo, hi, letters);
            let all = NumRange::new(prefix, width, 0, top);
            let mut hits = vec![0u8; (top + 1) as usize];
            for name in &written {
                for &(l, h) in exten_matches(name, &all).runs() {
                    for v in l..=h {
                        hits[v as usize] += 1;
                    }
                }
                if width < 4 {
                    let longer = NumRange::new(prefix, width + 1, 0, 10u64.pow(width + 1) - 1);
                    prop_assert!(exten_matches(name, &longer).is_empty(), "{name} matches {} digits", width + 1);
                }
            }
            for (v, n) in hits.iter().enumerate() {
                let inside = (lo..=hi).contains(&(v as u64));
                prop_assert_eq!(*n, u8::from(inside), "{} in {:?} ({}-{})", v, written, lo, hi);
            }
        }

        /// Any orbit range the configuration accepts, written as the generated include and the
        /// lint's fixes write it and read back: its patterns together take exactly its orbits,
        /// none taken twice, and no number of another prefix or length. Checked twice over: as
        /// sets of runs on the lint's automata (every number of every prefix and length up to
        /// 10 digits), and by matching sample dialled strings with the read regex.
        #[test]
        fn any_orbit_range_written_reads_back_as_its_orbits(
            prefix in prop::sample::select(vec![Prefix::None, Prefix::Star, Prefix::Hash]),
            digits in 1u32..=9,
            a in any::<u32>(),
            b in any::<u32>(),
            short in any::<bool>(),
        ) {
            let digits = if prefix == Prefix::None { digits } else { digits.clamp(3, 8) };
            // Lync's orbits: no leading 0, and above 100 after `*` or `#`.
            let low = if prefix == Prefix::None { 10u32.pow(digits - 1) } else { 10u32.pow(digits - 1).max(101) };
            let count = 10u32.pow(digits) - low;
            let (a, b) = (low + a % count, low + b % count);
            let first = Orbit::new(prefix, a.min(b)).unwrap();
            let last = Orbit::new(prefix, a.max(b)).unwrap();
            let span = Span::new(first, last).unwrap();
            let letters = if short { Letters::Short } else { Letters::Brackets };
            let written = span_patterns(&span, letters);
            let (lo, hi) = (u64::from(first.value()), u64::from(last.value()));

            let mut union = RunSet::new();
            let mut taken = 0;
            for name in &written {
                let re = exten_regex(name).expect("a pattern that can match");
                let mut m = Matcher::new(&re, Dialect::Rust).unwrap();
                for p in [Prefix::None, Prefix::Star, Prefix::Hash] {
                    for w in 1..=10 {
                        let every = NumRange::new(p.as_str(), w, 0, 10u64.pow(w) - 1);
                        let set = m.matching(&every).unwrap();
                        if (p, w) != (prefix, digits) {
                            prop_assert!(set.is_empty(), "{} matches {} ({} digits)", name, p.as_str(), w);
                            continue;
                        }
                        taken += set.count();
                        union = union.union(&set);
                    }
                }

                let re = regex::Regex::new(&re).unwrap();
                let dialled = |v: u64| format!("{}{v}", prefix.as_str());
                prop_assert!(!re.is_match(&format!("{}0", dialled(lo))), "{} takes {}0", name, dialled(lo));
                prop_assert!(!re.is_match(&format!("9{}", dialled(hi))), "{} takes 9{}", name, dialled(hi));
                let other = if prefix == Prefix::Star { "#" } else { "*" };
                prop_assert!(!re.is_match(&format!("{other}{lo}")), "{} takes {}{}", name, other, lo);
            }
            prop_assert_eq!(union, RunSet::single(lo, hi), "{:?} for {}-{}", written, first, last);
            prop_assert_eq!(taken, hi - lo + 1, "{:?} overlap", written);

            // The ends, their neighbours and a few numbers between, as dialled.
            let matched = |text: &str| {
                written
                    .iter()
                    .filter(|n| regex::Regex::new(&exten_regex(n).unwrap()).unwrap().is_match(text))
                    .count()
            };
            let step = ((hi - lo) / 7).max(1);
            let samples = (lo.saturating_sub(1)..=hi + 1).step_by(step as usize).chain([lo, hi]);
            for v in samples {
                let text = format!("{}{v}", prefix.as_str());
                prop_assert_eq!(matched(&text), usize::from((lo..=hi).contains(&v)), "{} in {:?}", text, written);
            }
        }
    }

    #[test]
    fn asterisk_spellings() {
        let short = asterisk_patterns("", 3, 701, 799, Letters::Short);
        assert_eq!(short, ["_70Z", "_7ZX"]);
        let brackets = asterisk_patterns("", 3, 701, 799, Letters::Brackets);
        assert_eq!(brackets, ["_70[1-9]", "_7[1-9]X"]);
        assert_eq!(
            asterisk_patterns("*", 4, 7000, 7099, Letters::Brackets),
            ["_*70XX"]
        );
        assert_eq!(asterisk_patterns("", 3, 700, 700, Letters::Short), ["700"]);
        assert_eq!(
            asterisk_patterns("#", 3, 200, 999, Letters::Short),
            ["_#NXX"]
        );
        assert_eq!(
            asterisk_patterns("", 3, 130, 159, Letters::Short),
            ["_1[3-5]X"]
        );
        let span: Span = "*7000-*7099".parse().unwrap();
        assert_eq!(span_patterns(&span, Letters::Brackets), ["_*70XX"]);
    }

    #[test]
    fn regex_of_patterns() {
        assert_eq!(exten_regex("_7XX").unwrap(), "^7[0-9][0-9]$");
        assert_eq!(exten_regex("_*7.5").unwrap(), r"^\*7(?s:.)+");
        assert_eq!(exten_regex("70-1").unwrap(), "^701$");
        assert!(exten_regex("_7[12").is_none());
    }
}
