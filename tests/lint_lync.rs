//! Lync / Skype for Business / Teams normalization rules: every expected finding is computed
//! here by enumerating the orbits with fancy-regex (an independent backtracking engine doing
//! `Regex.Replace`), or written out by hand.

use std::collections::BTreeMap;
use std::path::Path;

use callpark::lint::automaton::NumRange;
use callpark::lint::lync::{self, LyncRule};
use callpark::lint::runs::RunSet;
use callpark::lint::{Certainty, Report, Target, orbits_from_list};

const ORBITS: &str = "701-799,*7000-*7099";

fn example(name: &str) -> (String, String) {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("normalization")
        .join(name);
    (
        std::fs::read_to_string(&p).unwrap(),
        format!("normalization/{name}"),
    )
}

fn lint(rules: &[LyncRule], orbits: &str) -> Report {
    let table = orbits_from_list(orbits).unwrap();
    let mut r = Report::new(Target::from_table(&table));
    lync::check(rules, &mut r);
    r
}

/// .NET substitution to the `regex`-crate form fancy-regex expands (`$1` -> `${1}`).
fn replacement(t: &str) -> String {
    let re = regex::Regex::new(r"\$(\d+)").unwrap();
    re.replace_all(t, "$${$1}").into_owned()
}

/// Per (dial plan, rule name): orbits it changes and orbits it keeps, by enumeration.
type Outcome = BTreeMap<(String, String), (Vec<String>, Vec<String>)>;

fn oracle(rules: &[LyncRule], orbits: &str) -> Outcome {
    let table = orbits_from_list(orbits).unwrap();
    let mut out: Outcome = BTreeMap::new();
    for (plan, list) in lync::dial_plans(rules) {
        let compiled: Vec<(String, fancy_regex::Regex, String)> = list
            .iter()
            .map(|r| {
                (
                    r.name.clone(),
                    fancy_regex::Regex::new(&r.pattern).unwrap(),
                    replacement(&r.translation),
                )
            })
            .collect();
        for range in table.ranges() {
            for i in 0..range.span.len() {
                let orbit = range.span.at(i).unwrap().to_string();
                for (name, re, tr) in &compiled {
                    if re.is_match(&orbit).unwrap() {
                        let after = re.replace_all(&orbit, tr.as_str());
                        let e = out.entry((plan.clone(), name.clone())).or_default();
                        if after == orbit {
                            e.1.push(orbit.clone());
                        } else {
                            e.0.push(orbit.clone());
                        }
                        break;
                    }
                }
            }
        }
    }
    out
}

fn texts(report: &Report, list: &[(usize, RunSet)]) -> Vec<String> {
    list.iter()
        .flat_map(|(t, s)| {
            let r = report.targets[*t].range.clone();
            s.values().map(move |v| r.text(v)).collect::<Vec<_>>()
        })
        .collect()
}

/// The lint's findings and protections must be exactly the oracle's.
fn assert_matches_oracle(rules: &[LyncRule], orbits: &str) -> Report {
    let report = lint(rules, orbits);
    let expected = oracle(rules, orbits);
    let mut got: Outcome = BTreeMap::new();
    for f in &report.findings {
        assert_eq!(f.certainty, Certainty::Caught, "{f:?}");
        let name = rules
            .iter()
            .find(|r| r.file == f.file && r.line == f.line)
            .unwrap()
            .name
            .clone();
        got.entry((f.scope.clone(), name))
            .or_default()
            .0
            .extend(texts(&report, &f.caught));
    }
    for p in &report.protections {
        let name = rules
            .iter()
            .find(|r| r.file == p.file && r.line == p.line)
            .unwrap()
            .name
            .clone();
        got.entry((p.scope.clone(), name))
            .or_default()
            .1
            .extend(texts(&report, &p.kept));
    }
    let sorted = |o: Outcome| -> Outcome {
        o.into_iter()
            .map(|(k, (mut a, mut b))| {
                a.sort();
                b.sort();
                (k, (a, b))
            })
            .collect()
    };
    assert_eq!(sorted(got), sorted(expected));
    report
}

fn finding<'a>(r: &'a Report, rule: &str) -> &'a callpark::lint::Finding {
    r.findings
        .iter()
        .find(|f| f.rule == rule)
        .unwrap_or_else(|| panic!("no finding for {rule}: {:#?}", r.findings))
}

fn runs(r: &Report, f: &callpark::lint::Finding) -> Vec<(String, String)> {
    callpark::lint::report::caught_texts(r, &f.caught)
}

#[test]
fn site_dial_plan_powershell_export() {
    let (text, file) = example("examples/lync/site-redmond.ps1");
    let rules = lync::parse(&text, &file).unwrap();
    assert_eq!(rules.len(), 12);
    let r = assert_matches_oracle(&rules, ORBITS);
    // By hand: the look-ahead rule takes 710-799 (701-709 are kept above it), the feature-code
    // rule *7000-*7049; `Keep star codes` shields *7050-*7099 from `Star to operator`.
    assert_eq!(r.findings.len(), 2);
    let f = finding(&r, "Redmond 3 digit");
    assert_eq!(runs(&r, f), [("710".into(), "799".into())]);
    assert_eq!((f.line, f.count()), (9, 90));
    assert!(
        f.fix
            .contains("-Pattern '^(7[1-9]\\d)$' -Translation '$1' -Priority 1")
    );
    let f = finding(&r, "Feature codes *70xx");
    assert_eq!(runs(&r, f), [("*7000".into(), "*7049".into())]);
    assert_eq!(f.line, 13);
    let keep = r
        .protections
        .iter()
        .find(|p| p.rule == "Keep star codes")
        .unwrap();
    assert_eq!(keep.shields, ["Star to operator"]);
}

#[test]
fn global_csv_export_sorted_by_priority() {
    let (text, file) = example("examples/lync/global-export.csv");
    let rules = lync::parse(&text, &file).unwrap();
    let plan = &lync::dial_plans(&rules)[0];
    let order: Vec<&str> = plan.1.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        order,
        [
            "Keep all star codes",
            "Internal 7xx",
            "Star to E.164",
            "Prefix All"
        ]
    );
    let r = assert_matches_oracle(&rules, ORBITS);
    let f = finding(&r, "Internal 7xx");
    assert_eq!((f.line, f.count()), (5, 99));
    assert_eq!(f.scope, "Global");
}

#[test]
fn teams_json_dial_plan_is_clean() {
    let (text, file) = example("examples/lync/teams-dialplan.json");
    let rules = lync::parse(&text, &file).unwrap();
    assert!(rules.iter().all(|r| r.dial_plan == "Tag:DP-Seattle"));
    assert_eq!(rules[1].line, 17);
    let r = assert_matches_oracle(&rules, ORBITS);
    assert!(r.findings.is_empty());
}

#[test]
fn shipped_protecting_rules_clear_the_examples() {
    let mut rules = Vec::new();
    for f in [
        "lync/protect-orbits.ps1",
        "examples/lync/site-redmond.ps1",
        "examples/lync/global-export.csv",
    ] {
        let (text, file) = example(f);
        rules.extend(lync::parse(&text, &file).unwrap());
    }
    let r = assert_matches_oracle(&rules, ORBITS);
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
}

#[test]
fn the_fix_when_pasted_clears_the_finding() {
    let (text, file) = example("examples/lync/site-redmond.ps1");
    let rules = lync::parse(&text, &file).unwrap();
    let r = lint(&rules, ORBITS);
    let mut patched = text.clone();
    for f in &r.findings {
        patched.push_str(&f.fix);
        patched.push('\n');
    }
    let rules = lync::parse(&patched, &file).unwrap();
    let r = assert_matches_oracle(&rules, ORBITS);
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
}

/// Rules written like a Lync dial-plan tool's output for several sites, against orbit ranges
/// with 4- and 5-digit orbits and both prefixes.
#[test]
fn many_sites_against_the_oracle() {
    let mut ps = String::new();
    let sites = [
        ("Redmond", "425555"),
        ("Dublin", "35312555"),
        ("Oslo", "4722"),
    ];
    for (i, (site, e164)) in sites.iter().enumerate() {
        let plan = format!("Site:{site}");
        let rules = [
            ("Keep feature codes", r"^(\*6\d{3})$", "$1"),
            ("4 digit", r"^([2-7]\d{3})$", "+{e}$1"),
            ("5 digit", r"^(5[5-9]\d{3})$", "+{e}$1"),
            ("Site code", r"^8(\d)(\d{4})$", "+{e}$1$2"),
            ("Hash", r"^#(\d{3,4})$", "+{e}#$1"),
            ("Star codes", r"^(\*[1-8]\d{2,3})$", "+{e};ext=$1"),
            ("Star pass", r"^\*(\d+)$", "*$1"),
            ("Same 4", r"^(5\d)(\d\d)$", "$1$2"),
            ("Swap", r"^(9)(\d{3})$", "$2$1"),
            ("Unanchored 55", r"55", "55"),
            ("Unanchored 5", r"5(\d)", "6$1"),
        ];
        for j in 0..rules.len() {
            // Rotate the order per site so each site has its own first-match winners.
            let (name, pat, tr) = rules[(j + i * 3) % rules.len()];
            ps.push_str(&format!(
                "New-CsVoiceNormalizationRule -Identity '{plan}/{name}' -Pattern '{pat}' -Translation '{}'\n",
                tr.replace("{e}", e164)
            ));
        }
        if i == 1 {
            // Reorder one site with explicit priorities, as an admin would.
            ps.push_str(&format!(
                "Set-CsVoiceNormalizationRule -Identity '{plan}/Unanchored 5' -Priority 0\n"
            ));
        }
        if i == 2 {
            ps.push_str(&format!(
                "Remove-CsVoiceNormalizationRule -Identity '{plan}/Keep feature codes'\n"
            ));
        }
    }
    let rules = lync::parse_ps1(&ps, "sites.ps1").unwrap();
    assert_eq!(rules.len(), 32);
    let orbits = "5500-5999,*6000-*6999,#700-#799,2000-2099,55000-55999,*7000-*7099";
    let r = assert_matches_oracle(&rules, orbits);
    assert!(r.findings.len() >= 6, "{:#?}", r.findings);
}

#[test]
fn unreadable_inputs_name_file_and_line() {
    let e = lync::parse_ps1(
        "New-CsVoiceNormalizationRule -Parent Global -Name x -Priority high\n",
        "x.ps1",
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "x.ps1:1: -Priority `high` is not a number");
    let e =
        lync::parse_csv("\"Identity\",\"Priority\"\n\"Global/x\",\"1\"\n", "x.csv").unwrap_err();
    assert!(
        e.to_string().starts_with("x.csv:1: no Pattern column"),
        "{e}"
    );
    let e = lync::parse_json("[{\"Pattern\": \"x\",\n}]", "x.json").unwrap_err();
    assert!(e.to_string().starts_with("x.json:2:"), "{e}");
}

#[test]
fn defaults_and_undecided() {
    // No -Pattern/-Translation: Lync's defaults ^(\d{11})$ -> +$1.
    let rules = lync::parse_ps1(
        "New-CsVoiceNormalizationRule -Parent Global -Name eleven\n\
         New-CsVoiceNormalizationRule -Parent Global -Name look -Pattern '^(?=1)(\\d{9})$' -Translation '+$1'\n\
         New-CsVoiceNormalizationRule -Parent Global -Name big -Pattern '^(\\d{9})$' -Translation '5$1'\n",
        "d.ps1",
    )
    .unwrap();
    assert_eq!(rules[0].pattern, r"^(\d{11})$");
    assert_eq!(rules[0].translation, "+$1");
    // 10^6 orbits of one range: the look-ahead still runs orbit by orbit and catches them all.
    let r = lint(&rules, "100000000-100999999");
    let f = finding(&r, "look");
    assert_eq!((f.certainty, f.count()), (Certainty::Caught, 1_000_000));
    // `5$1` writes only digits, so its shape does not tell whether it keeps an orbit: it is
    // decided orbit by orbit (9 digits become 10: it changes all of them)...
    let r = lint(&rules[2..], "200000000-200999999");
    let f = finding(&r, "big");
    assert_eq!((f.certainty, f.count()), (Certainty::Caught, 1_000_000));
    // ...which the lint does not do beyond 10^6 orbits: undecided, with the reason.
    let wide = NumRange::new("", 9, 100_000_000, 999_999_999);
    let mut c = lync::Compiled::new(&rules[2]);
    let why = c.split(&wide, &wide.all()).unwrap_err();
    assert!(
        why.0.contains("keeps some orbits and changes others"),
        "{}",
        why.0
    );
}

mod random {
    use super::*;
    use proptest::prelude::*;

    /// A rule: a pattern of capture groups and literals over the orbit alphabet, and a
    /// translation made of literals and references to those groups.
    fn rule() -> impl Strategy<Value = (String, String)> {
        let atom = prop_oneof![
            (0u8..10).prop_map(|d| d.to_string()),
            Just(r"\d".to_string()),
            Just(r"\*".to_string()),
            (0u8..10, 0u8..10).prop_map(|(a, b)| format!("[{}-{}]", a.min(b), a.max(b))),
            Just(r"\d{2}".to_string()),
            Just(r"\d?".to_string()),
        ];
        let item = (atom, any::<bool>()).prop_map(|(a, g)| if g { format!("({a})") } else { a });
        (
            prop::collection::vec(item, 1..5),
            any::<bool>(),
            any::<bool>(),
            prop::collection::vec(
                prop_oneof![
                    (1usize..5).prop_map(|g| format!("${g}")),
                    Just("$0".to_string()),
                    Just("*".to_string()),
                    Just("7".to_string()),
                    Just("+1".to_string()),
                ],
                0..4,
            ),
        )
            .prop_map(|(items, start, end, tr)| {
                let groups = items.iter().filter(|i| i.starts_with('(')).count();
                // References to groups that do not exist are literal text in .NET; keep to
                // existing ones so the oracle's replacement syntax agrees.
                let tr: Vec<String> = tr
                    .into_iter()
                    .filter(|t| match t.strip_prefix('$') {
                        Some(n) => n.parse::<usize>().unwrap() <= groups,
                        None => true,
                    })
                    .collect();
                // `$1` then `7` is group 1 and a 7 in .NET but group 17 in the oracle's
                // syntax: brace a reference that a digit follows (both read `${1}` alike).
                let mut t = String::new();
                for (k, part) in tr.iter().enumerate() {
                    let digit_next = tr
                        .get(k + 1)
                        .is_some_and(|n| n.starts_with(|c: char| c.is_ascii_digit()));
                    match part.strip_prefix('$') {
                        Some(g) if digit_next => t.push_str(&format!("${{{g}}}")),
                        _ => t.push_str(part),
                    }
                }
                (
                    format!(
                        "{}{}{}",
                        if start { "^" } else { "" },
                        items.concat(),
                        if end { "$" } else { "" }
                    ),
                    t,
                )
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Random dial plans: the lint's catches and protections equal enumeration.
        #[test]
        fn random_dial_plans_equal_enumeration(rules in prop::collection::vec(rule(), 1..6)) {
            let mut ps = String::new();
            for (i, (p, t)) in rules.iter().enumerate() {
                ps.push_str(&format!(
                    "New-CsVoiceNormalizationRule -Parent Global -Name r{i} -Pattern '{p}' -Translation '{t}'\n"
                ));
            }
            let rules = lync::parse_ps1(&ps, "r.ps1").unwrap();
            assert_matches_oracle(&rules, "701-799,*7000-*7099,55-60,#1000-#1010");
        }
    }
}

/// The protecting rules shipped in normalization/ are the ones the lint computes for the
/// example orbit table (contrib/callpark.example.toml).
#[test]
fn shipped_protecting_rules_are_the_computed_ones() {
    use callpark::lint::fix;
    let cfg = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/callpark.example.toml"),
    )
    .unwrap();
    assert!(cfg.contains("first = \"701\"") && cfg.contains("first = \"*7000\""));
    let table = orbits_from_list(ORBITS).unwrap();
    let parts: Vec<(NumRange, RunSet)> = Target::from_table(&table)
        .into_iter()
        .map(|t| {
            let all = t.range.all();
            (t.range, all)
        })
        .collect();
    let pattern = fix::protecting_regex(&parts);
    assert_eq!(pattern, r"^(70[1-9]|7[1-9]\d|\*70\d{2})$");
    let (ps1, _) = example("lync/protect-orbits.ps1");
    assert_eq!(ps1.matches(&format!("-Pattern '{pattern}'")).count(), 2);
    // FreeSWITCH: the include `callpark dialplan freeswitch` writes for the example table
    // (shipped as dialplan/freeswitch/callpark.xml) has one extension per range, each with the
    // range's own protecting expression.
    let xml = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("dialplan/freeswitch/callpark.xml"),
    )
    .unwrap();
    for part in &parts {
        let own = fix::protecting_regex(std::slice::from_ref(part));
        assert!(xml.contains(&format!("expression=\"{own}\"")), "{own}");
    }
    let (conf, _) = example("asterisk/callpark-orbits.conf");
    for (r, s) in &parts {
        for p in fix::asterisk_patterns(r, s) {
            assert!(
                conf.contains(&format!("exten => {p},1,Goto(callpark,${{EXTEN}},1)")),
                "{p}"
            );
        }
    }
}
