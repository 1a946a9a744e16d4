//! Asterisk: the extension order (confirmed on the real testbed, see
//! tests/data/lint/asterisk_order/README.md), pattern matching against an independent
//! per-character matcher, and the findings and fixes on the example extensions.conf.

use std::path::{Path, PathBuf};

use callpark::lint::asterisk::{self, Dialplan};
use callpark::lint::automaton::NumRange;
use callpark::lint::{Certainty, Kind, Report, Target, orbits_from_list};
use proptest::prelude::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn check(dp: &Dialplan, ctx: &str, orbits: &str) -> Report {
    let table = orbits_from_list(orbits).unwrap();
    let mut r = Report::new(Target::from_table(&table));
    asterisk::check(dp, ctx, &mut r).unwrap();
    r
}

#[test]
fn order_matches_what_the_testbed_runs() {
    let dir = root().join("tests/data/lint/asterisk_order");
    let mut plans = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "conf") {
            plans.push(asterisk::load(&p).unwrap());
        }
    }
    let expected = std::fs::read_to_string(dir.join("expected.txt")).unwrap();
    let mut n = 0;
    for line in expected.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let [orbit, ctx, wctx, wext] = f[..] else {
            panic!("bad line {line}")
        };
        let dp = plans
            .iter()
            .find(|d| d.context(ctx).is_some())
            .unwrap_or_else(|| panic!("no context {ctx}"));
        let got = asterisk::winner(dp, ctx, orbit)
            .map(|(c, e)| format!("{} {}", c.name, e.name))
            .unwrap_or_else(|| "- -".into());
        assert_eq!(got, format!("{wctx} {wext}"), "{orbit}@{ctx}");
        n += 1;
    }
    assert!(n >= 20);
}

/// Asterisk's matching rules, written out per character (as `_extension_match_core` reads).
fn ast_match(pattern: &str, data: &str) -> bool {
    let Some(p) = pattern.strip_prefix('_') else {
        return pattern.replace('-', "") == data;
    };
    let p: Vec<char> = p.chars().collect();
    let d: Vec<char> = data.chars().collect();
    let (mut i, mut j) = (0, 0);
    loop {
        // `-` is decoration between positions (inside a set it means a range).
        while p.get(i) == Some(&'-') {
            i += 1;
        }
        if j == d.len() {
            return i == p.len() || p[i] == '!';
        }
        if i == p.len() {
            return false;
        }
        let c = d[j];
        match p[i] {
            '.' => return true,
            '!' => return true,
            'X' | 'x' if c.is_ascii_digit() => {}
            'Z' | 'z' if ('1'..='9').contains(&c) => {}
            'N' | 'n' if ('2'..='9').contains(&c) => {}
            '[' => {
                let end = i + p[i..].iter().position(|&x| x == ']').unwrap();
                let set = &p[i + 1..end];
                let mut k = 0;
                let mut hit = false;
                while k < set.len() {
                    if k + 2 < set.len() && set[k + 1] == '-' {
                        hit |= set[k] <= c && c <= set[k + 2];
                        k += 3;
                    } else {
                        hit |= set[k] == c;
                        k += 1;
                    }
                }
                if !hit {
                    return false;
                }
                i = end;
            }
            x if x == c && !"XxZzNn".contains(x) => {}
            _ => return false,
        }
        i += 1;
        j += 1;
    }
}

fn ext_pattern() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        (0u8..10).prop_map(|d| d.to_string()),
        Just("X".to_string()),
        Just("Z".to_string()),
        Just("N".to_string()),
        Just("*".to_string()),
        Just("-".to_string()),
        (0u8..10, 0u8..10).prop_map(|(a, b)| format!("[{}-{}]", a.min(b), a.max(b))),
        (0u8..10, 0u8..10).prop_map(|(a, b)| format!("[{a}{b}]")),
    ];
    (
        prop::collection::vec(piece, 1..6),
        prop_oneof![Just(""), Just("."), Just("!")],
    )
        .prop_map(|(v, end)| format!("_{}{end}", v.concat()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn pattern_sets_equal_per_orbit_matching(
        p in ext_pattern(),
        prefix in prop_oneof![Just(""), Just("*")],
        w in 1u32..5,
        a in any::<u64>(),
        b in any::<u64>(),
    ) {
        let n = 10u64.pow(w);
        let (a, b) = ((a % n).min(b % n), (a % n).max(b % n));
        let r = NumRange::new(prefix, w, a, b);
        let set = asterisk::exten_matches(&p, &r);
        for v in a..=b {
            prop_assert_eq!(set.contains(v), ast_match(&p, &r.text(v)), "{} vs {}", p, r.text(v));
        }
    }
}

fn example() -> Dialplan {
    asterisk::load(&root().join("normalization/examples/asterisk/extensions.conf")).unwrap()
}

#[test]
fn example_internal_phones() {
    let dp = example();
    let r = check(&dp, "internal-phones", "701-799,*7000-*7099");
    type Seen = (String, Certainty, Vec<(String, String)>, usize);
    let got: Vec<Seen> = r
        .findings
        .iter()
        .map(|f| {
            (
                f.rule.clone(),
                f.certainty,
                callpark::lint::report::caught_texts(&r, &f.caught),
                f.line,
            )
        })
        .collect();
    // By hand: the context's own _7XX beats every include; [features] comes before [callpark];
    // [after-hours] too, but only at night.
    assert_eq!(
        got,
        [
            (
                "_7XX@internal-phones".to_string(),
                Certainty::Caught,
                vec![("701".to_string(), "799".to_string())],
                15
            ),
            (
                "_*70[0-4]X@features".to_string(),
                Certainty::Caught,
                vec![("*7000".to_string(), "*7049".to_string())],
                27
            ),
            (
                "_*7XXX@after-hours".to_string(),
                Certainty::MayCatch,
                vec![("*7050".to_string(), "*7099".to_string())],
                32
            ),
        ]
    );
    // `_7XX` rings the phones 7XX: a numbering-plan conflict, whose fix is another range.
    assert_eq!(r.findings[0].kind, Kind::Conflicts);
    assert_eq!(
        r.findings[0].kind_why.as_deref(),
        Some("it rings the phone of the dialled number (`Dial(PJSIP/${EXTEN},20)`)")
    );
    assert_eq!(
        r.findings[0].fix,
        "no insertion fix: these numbers are destinations in [internal-phones]; use another orbit range instead of 701-799, e.g. 601-699, 801-899, 501-599 (no destination there), or renumber those extensions"
    );
    // The legacy pickup codes only play a message: protect the orbits from them.
    assert_eq!(r.findings[1].kind, Kind::Catches);
    assert!(
        r.findings[1]
            .fix
            .contains("move `include => callpark` above `include => features` (line 20)"),
        "{}",
        r.findings[1].fix
    );
}

#[test]
fn example_lobby_is_clean() {
    let r = check(&example(), "lobby", "701-799,*7000-*7099");
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
}

/// The fixes, applied to the file, leave no finding.
#[test]
fn fixes_applied_clear_the_findings() {
    let dir = tempfile::tempdir().unwrap();
    let src = root().join("normalization/examples/asterisk");
    std::fs::copy(src.join("callpark.conf"), dir.path().join("callpark.conf")).unwrap();
    std::fs::copy(
        root().join("normalization/asterisk/callpark-orbits.conf"),
        dir.path().join("callpark-orbits.conf"),
    )
    .unwrap();
    let text = std::fs::read_to_string(src.join("extensions.conf"))
        .unwrap()
        // The shipped template first, then callpark above the other includes.
        .replace(
            "#include callpark.conf",
            "#include callpark.conf\n#include callpark-orbits.conf",
        )
        .replace("[internal-phones]", "[internal-phones](callpark-orbits)")
        .replace(
            "include => features\n",
            "include => callpark\ninclude => features\n",
        );
    let file = dir.path().join("extensions.conf");
    std::fs::write(&file, text).unwrap();
    let dp = asterisk::load(&file).unwrap();
    let r = check(&dp, "internal-phones", "701-799,*7000-*7099");
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
}

#[test]
fn no_callpark_extension_is_a_finding() {
    let dp = asterisk::parse_str(
        "[phones]\nexten => _5XXX,1,Dial(PJSIP/${EXTEN})\n",
        "x.conf",
    )
    .unwrap();
    let r = check(&dp, "phones", "701-799");
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].rule, "(no extension)");
    assert_eq!(r.findings[0].count(), 99);
    assert!(r.findings[0].fix.contains("include => callpark"));
}

#[test]
fn caller_id_extensions_may_catch() {
    let dp = asterisk::parse_str(
        "[phones]\n\
         exten => _7XX/5551234,1,Dial(PJSIP/boss)\n\
         exten => _7XX,1,Stasis(callpark,retrieve,${EXTEN})\n",
        "x.conf",
    )
    .unwrap();
    let r = check(&dp, "phones", "701-799");
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].certainty, Certainty::MayCatch);
    assert_eq!(r.findings[0].line, 2);
}

#[test]
fn errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("extensions.conf");
    std::fs::write(&file, "[a]\nexten => 1,1,NoOp()\n#include missing.conf\n").unwrap();
    let e = asterisk::load(&file).unwrap_err().to_string();
    assert!(
        e.ends_with("extensions.conf:3: #include missing.conf: no such file"),
        "{e}"
    );
    let e = asterisk::parse_str("[a]\nexten => 701,one,NoOp()\n", "b.conf")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "b.conf:2: priority `one` is not a number, n, s, hint or a label of this extension"
    );
    assert!(
        asterisk::load(Path::new("/nonexistent/extensions.conf"))
            .unwrap_err()
            .to_string()
            .starts_with("/nonexistent/extensions.conf: ")
    );
}

#[test]
fn switches_are_asked_before_includes() {
    let dp = asterisk::parse_str(
        "[callpark]\nexten => _7XX,1,Stasis(callpark,retrieve,${EXTEN})\n\
         [phones]\ninclude => callpark\nswitch => IAX2/guest@other-pbx/phones\n",
        "x.conf",
    )
    .unwrap();
    let r = check(&dp, "phones", "701-799");
    assert_eq!(r.findings.len(), 1);
    let f = &r.findings[0];
    assert_eq!(
        (f.rule.as_str(), f.certainty, f.line, f.count()),
        (
            "switch => IAX2/guest@other-pbx/phones@phones",
            Certainty::MayCatch,
            5,
            99
        )
    );
}

#[test]
fn what_the_extension_runs_decides_catches_or_conflicts() {
    let dp = asterisk::parse_str(
        "[trunk]\n\
         exten => _X.,1,Dial(PJSIP/${EXTEN}@carrier)\n\
         [ivr]\n\
         exten => s,1,Background(menu)\n\
         [a]\n\
         exten => _71X,1,NoOp()\n same => n,Dial(PJSIP/${EXTEN}@carrier)\n\
         exten => _72X,1,Dial(SIP/carrier/${EXTEN})\n\
         exten => _73X,1,Goto(trunk,1${EXTEN},1)\n\
         exten => _74X,1,Goto(ivr,s,1)\n\
         exten => _75X,1,VoiceMail(${EXTEN}@default)\n\
         exten => _76X,1,Dial(SIP/${EXTEN}&IAX2/${EXTEN},20)\n\
         exten => _77X,1,Playback(not-in-service)\n same => n,Hangup()\n\
         exten => _78X,1,Dial(PJSIP/reception)\n\
         exten => 790,1,Playback(hello)\n\
         exten => _7!,1,Dial(PJSIP/${EXTEN})\n",
        "x.conf",
    )
    .unwrap();
    let a = dp.context("a").unwrap();
    let kind = |name: &str| {
        let e = a.extens.iter().find(|e| e.name == name).unwrap();
        asterisk::classify(&dp, e)
    };
    // Onward to a trunk, directly or through a context that dials one: catches.
    assert_eq!(kind("_71X").0, Kind::Catches);
    assert!(kind("_71X").1.contains("trunk"));
    assert_eq!(kind("_72X").0, Kind::Catches);
    assert_eq!(kind("_73X").0, Kind::Catches);
    assert!(kind("_73X").1.contains("[trunk]"), "{}", kind("_73X").1);
    // An IVR, voicemail, the dialled phone: conflicts.
    assert_eq!(kind("_74X").0, Kind::Conflicts);
    assert_eq!(kind("_75X").0, Kind::Conflicts);
    assert_eq!(kind("_76X").0, Kind::Conflicts);
    // Swallowing numbers, or one fixed phone for many numbers: not a destination of its own.
    assert_eq!(kind("_77X").0, Kind::Catches);
    assert_eq!(kind("_78X").0, Kind::Catches);
    // Exact: a destination whatever it runs; a catch-all: caught whatever it runs.
    assert_eq!(kind("790").0, Kind::Conflicts);
    // What the lint cannot follow (a script, a Goto to a context it cannot see) counts as a
    // destination: a fix never reorders it.
    let dp2 = asterisk::parse_str(
        "[b]\nexten => _79X,1,AGI(route.agi,${EXTEN})\nexten => _80X,1,Goto(elsewhere,${EXTEN},1)\nexten => _81X,1,Answer()\n same => n,Hangup()\n",
        "y.conf",
    )
    .unwrap();
    let b = dp2.context("b").unwrap();
    let k2 = |name: &str| {
        let e = b.extens.iter().find(|e| e.name == name).unwrap();
        asterisk::classify(&dp2, e)
    };
    assert_eq!(k2("_79X").0, Kind::Conflicts);
    assert!(k2("_79X").1.contains("cannot follow"), "{}", k2("_79X").1);
    assert_eq!(k2("_80X").0, Kind::Conflicts);
    assert_eq!(k2("_81X").0, Kind::Catches);
    assert_eq!(kind("_7!").0, Kind::Catches);
    // And in the findings: the conflict has no insertion fix.
    let r = check(&dp, "a", "750-759");
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].kind, Kind::Conflicts);
    assert!(
        !r.findings[0].fix.contains("exten =>"),
        "{}",
        r.findings[0].fix
    );
    let r = check(&dp, "a", "770-779");
    assert_eq!(r.findings[0].kind, Kind::Catches);
    // The orbits are exactly `_77X`: only exact extensions sort before it.
    assert!(
        r.findings[0]
            .fix
            .contains("exten => 770,1,Goto(callpark,${EXTEN},1)"),
        "{}",
        r.findings[0].fix
    );
}
