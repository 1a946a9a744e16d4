//! Patterns that match exactly a run of numbers, for the fixes the lint proposes. The split
//! into digit classes and their spellings are `orbit::pattern`'s, shared with the generated
//! include files.

use super::automaton::NumRange;
use super::runs::RunSet;
use crate::orbit::pattern::{self, Letters, regex_piece, regex_prefix};

/// Alternatives (prefix included) that together match exactly the numbers of `runs`.
pub fn runs_alternatives(range: &NumRange, runs: &RunSet) -> Vec<String> {
    let prefix = regex_prefix(&range.prefix);
    runs.runs()
        .iter()
        .flat_map(|&(a, b)| pattern::range_pieces(range.width, a, b))
        .map(|p| format!("{prefix}{}", regex_piece(&p)))
        .collect()
}

/// A regex (no anchors, no capture group) matching exactly the numbers of `runs` in `range`.
pub fn runs_regex(range: &NumRange, runs: &RunSet) -> String {
    let alts = runs_alternatives(range, runs);
    if alts.len() == 1 {
        alts[0].clone()
    } else {
        format!("(?:{})", alts.join("|"))
    }
}

/// What a finding caught, range by range, as a fix should cover it: a long list of scattered
/// runs is harder to read than the whole range, so more than 8 runs become the range.
pub fn caught_parts(f: &super::Finding, targets: &[super::Target]) -> Vec<(NumRange, RunSet)> {
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

/// Asterisk extension patterns (or plain extensions) matching exactly `runs` of `range`.
pub fn asterisk_patterns(range: &NumRange, runs: &RunSet) -> Vec<String> {
    runs.runs()
        .iter()
        .flat_map(|&(a, b)| {
            pattern::asterisk_patterns(&range.prefix, range.width, a, b, Letters::Short)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
