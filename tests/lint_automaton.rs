//! The automaton engine against plain enumeration with the `regex` crate.

use callpark::lint::automaton::{Dialect, Matcher, NumRange};
use callpark::lint::runs::RunSet;
use proptest::prelude::*;

fn enumerate(pattern: &str, r: &NumRange) -> RunSet {
    let re = regex::Regex::new(pattern).unwrap();
    RunSet::from_sorted(
        (r.lo..=r.hi)
            .filter(|&v| re.is_match(&r.text(v)))
            .map(|v| (v, v)),
    )
}

/// Small regexes over the orbit alphabet, with the constructs dial plans use.
fn pattern() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        (0u8..10).prop_map(|d| d.to_string()),
        Just(r"\d".to_string()),
        Just(r"\*".to_string()),
        Just("#".to_string()),
        Just(".".to_string()),
        (0u8..10, 0u8..10).prop_map(|(a, b)| format!("[{}-{}]", a.min(b), a.max(b))),
        Just("[^5]".to_string()),
        Just(r"\b".to_string()),
        Just(r"\B".to_string()),
        Just(r"\D".to_string()),
    ];
    let piece = (atom, 0usize..6).prop_map(|(a, q)| match q {
        0 => format!("{a}?"),
        1 => format!("{a}*"),
        2 => format!("{a}+"),
        3 => format!("{a}{{1,3}}"),
        _ => a,
    });
    let seq = prop::collection::vec(piece, 1..5).prop_map(|v| v.concat());
    (
        prop::collection::vec(seq, 1..3),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(alts, start, end, group)| {
            let body = alts.join("|");
            let body = if group || alts.len() > 1 {
                format!("({body})")
            } else {
                body
            };
            format!(
                "{}{body}{}",
                if start { "^" } else { "" },
                if end { "$" } else { "" }
            )
        })
}

fn range() -> impl Strategy<Value = NumRange> {
    (
        prop_oneof![Just(""), Just("*"), Just("#")],
        1u32..5,
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(|(p, w, a, b)| {
            let n = 10u64.pow(w);
            let (a, b) = (a % n, b % n);
            NumRange::new(p, w, a.min(b), a.max(b))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn automaton_equals_enumeration(p in pattern(), r in range()) {
        let mut m = Matcher::new(&p, Dialect::Rust).unwrap();
        prop_assert!(m.is_dfa());
        prop_assert_eq!(m.matching(&r).unwrap(), enumerate(&p, &r), "{} on {}", p, r);
    }

    /// The same matcher answers many ranges (its memo is shared) and stays exact.
    #[test]
    fn memo_shared_across_ranges(p in pattern(), rs in prop::collection::vec(range(), 1..6)) {
        let mut m = Matcher::new(&p, Dialect::Rust).unwrap();
        for r in &rs {
            prop_assert_eq!(m.matching(r).unwrap(), enumerate(&p, r), "{} on {}", p, r);
        }
    }
}

#[test]
fn billion_orbit_range_in_one_piece() {
    let r = NumRange::new("", 10, 1_000_000_000, 1_999_999_999);
    let mut m = Matcher::new(r"^1(\d{3})[5-9]\d{5}$", Dialect::DotNet).unwrap();
    let got = m.matching(&r).unwrap();
    assert_eq!(got.count(), 500_000_000);
    assert_eq!(got.runs().len(), 1000);
    assert_eq!(got.runs()[0], (1_000_500_000, 1_000_999_999));
    let mut all = Matcher::new(r"^\d{10}$", Dialect::DotNet).unwrap();
    assert_eq!(all.matching(&r).unwrap(), r.all());
}

#[test]
fn dotnet_constructs() {
    let r = NumRange::new("*", 4, 7000, 7099);
    // Named group in both .NET spellings, \Z, (?i), lazy quantifier.
    for p in [
        r"^\*(?<o>70[0-4]\d)$",
        r"^\*(?'o'70[0-4]\d)\Z",
        r"(?i)^\*70[0-4]\d+?$",
    ] {
        let mut m = Matcher::new(p, Dialect::DotNet).unwrap();
        assert!(m.is_dfa(), "{p}");
        assert_eq!(m.matching(&r).unwrap(), RunSet::single(7000, 7049), "{p}");
    }
    // Look-ahead and a backreference: fancy-regex, orbit by orbit.
    let mut m = Matcher::new(r"^\*(?!70[0-4])\d{4}$", Dialect::DotNet).unwrap();
    assert!(!m.is_dfa());
    assert_eq!(m.matching(&r).unwrap(), RunSet::single(7050, 7099));
    let mut m = Matcher::new(r"^\*70(\d)\1$", Dialect::DotNet).unwrap();
    let got = m.matching(&r).unwrap();
    assert_eq!(got.count(), 10);
    assert!((0..10).all(|d| got.contains(7000 + d * 11)));
}

#[test]
fn beyond_enumeration_is_undecided_not_passed() {
    let r = NumRange::new("", 9, 100_000_000, 999_999_999);
    let mut m = Matcher::new(r"^(?=1)\d{9}$", Dialect::DotNet).unwrap();
    let e = m.matching(&r).unwrap_err();
    assert!(
        e.0.contains("look-around") || e.0.contains("backtracking"),
        "{}",
        e.0
    );
}

#[test]
fn fragmented_answers_are_undecided() {
    // Every other number: 4.5 * 10^8 runs.
    let r = NumRange::new("", 9, 100_000_000, 999_999_999);
    let mut m = Matcher::new(r"[02468]$", Dialect::DotNet).unwrap();
    assert!(m.matching(&r).unwrap_err().0.contains("separate runs"));
}
