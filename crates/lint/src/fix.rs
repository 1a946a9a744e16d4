//! Patterns that match exactly a run of numbers, for the fixes the lint proposes. The split
//! into digit classes and its regex spelling are [`crate::pattern`]'s, its Asterisk spelling
//! [`crate::asterisk`]'s, both shared with the generated include files.

use super::automaton::NumRange;
use super::runs::RunSet;
use crate::asterisk::pattern::{self as asterisk_pattern, Letters};
use crate::pattern::{self, regex_piece, regex_prefix};

/// Alternatives (prefix included) that together match exactly the numbers of `runs`.
pub(crate) fn runs_alternatives(range: &NumRange, runs: &RunSet) -> Vec<String> {
    let prefix = regex_prefix(&range.prefix);
    runs.runs()
        .iter()
        .flat_map(|&(a, b)| {
            // One number is written as itself (`6000`, not `60{3}`).
            if a == b {
                vec![format!("{prefix}{:0w$}", a, w = range.width as usize)]
            } else {
                pattern::range_pieces(range.width, a, b)
                    .iter()
                    .map(|p| format!("{prefix}{}", regex_piece(p)))
                    .collect()
            }
        })
        .collect()
}

/// What a finding caught, range by range, as a fix should cover it: a long list of scattered
/// runs is harder to read than the whole range, so more than 8 runs become the range.
pub(crate) fn caught_parts(
    f: &super::Finding,
    targets: &[super::Target],
) -> Vec<(NumRange, RunSet)> {
    f.caught
        .iter()
        .map(|(t, s)| {
            let r = &targets[*t].range;
            if s.runs().len() > 8 {
                (r.clone(), r.all())
            } else {
                (r.clone(), s.clone())
            }
        })
        .collect()
}

/// A whole-string .NET/PCRE pattern for several ranges' runs; group 1 is the whole orbit.
pub fn protecting_regex(parts: &[(NumRange, RunSet)]) -> String {
    let alts: Vec<String> = parts
        .iter()
        .flat_map(|(r, s)| runs_alternatives(r, s))
        .collect();
    format!("^({})$", alts.join("|"))
}

/// The pattern of a protecting rule and what it passes on: group 1 (`$1`), or, when the
/// pattern names one number, `^6000$` and the number itself, which reads better in a fix.
pub(crate) fn protecting_pattern(parts: &[(NumRange, RunSet)]) -> (String, String) {
    if let [(r, s)] = parts
        && let [(a, b)] = s.runs()
        && a == b
    {
        let n = r.text(*a);
        return (format!("^{}$", regex_prefix(&n)), n);
    }
    (protecting_regex(parts), "$1".to_string())
}

/// Asterisk extension patterns (or plain extensions) matching exactly `runs` of `range`.
pub fn asterisk_patterns(range: &NumRange, runs: &RunSet) -> Vec<String> {
    runs.runs()
        .iter()
        .flat_map(|&(a, b)| {
            asterisk_pattern::asterisk_patterns(&range.prefix, range.width, a, b, Letters::Short)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A regex (no anchors, no capture group) matching exactly the numbers of `runs` in `range`.
    fn runs_regex(range: &NumRange, runs: &RunSet) -> String {
        let alts = runs_alternatives(range, runs);
        if alts.len() == 1 {
            alts[0].clone()
        } else {
            format!("(?:{})", alts.join("|"))
        }
    }

    #[test]
    fn pieces_cover_exactly() {
        for (w, lo, hi) in [
            (3, 701, 799),
            (4, 7000, 7099),
            (3, 123, 876),
            (4, 1999, 2000),
            (2, 10, 99),
            (1, 4, 7),
            (4, 5500, 5599),
        ] {
            let r = NumRange::new("*", w, lo, hi);
            let set = RunSet::single(lo, hi);
            let re = regex::Regex::new(&format!("^{}$", runs_regex(&r, &set))).unwrap();
            for v in 0..10u64.pow(w) {
                assert_eq!(
                    re.is_match(&r.text(v)),
                    (lo..=hi).contains(&v),
                    "{w} {lo} {hi} {v}"
                );
            }
        }
        let r = NumRange::new("", 3, 701, 799);
        assert_eq!(runs_regex(&r, &r.all()), r"(?:70[1-9]|7[1-9]\d)");
        assert_eq!(
            protecting_regex(&[(r.clone(), r.all())]),
            r"^(70[1-9]|7[1-9]\d)$"
        );
        assert_eq!(
            asterisk_patterns(&r, &r.all()),
            vec!["_70Z".to_string(), "_7ZX".to_string()]
        );
        let r = NumRange::new("*", 4, 7000, 7099);
        assert_eq!(protecting_regex(&[(r.clone(), r.all())]), r"^(\*70\d{2})$");
        // One number reads as itself, in an alternation or alone.
        let r = NumRange::new("", 4, 6000, 6099);
        let two = RunSet::from_sorted([(6000, 6000), (6050, 6051)]);
        assert_eq!(protecting_regex(&[(r.clone(), two)]), r"^(6000|605[01])$");
        assert_eq!(
            protecting_pattern(&[(r.clone(), RunSet::single(6000, 6000))]),
            ("^6000$".to_string(), "6000".to_string())
        );
        let star = NumRange::new("*", 2, 70, 79);
        assert_eq!(
            protecting_pattern(&[(star, RunSet::single(70, 70))]),
            (r"^\*70$".to_string(), "*70".to_string())
        );
    }
}
