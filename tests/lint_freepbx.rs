//! `callpark lint` on FreePBX's (AMP's) `extensions.conf` as the FreePBX framework repository
//! publishes it (tests/data/lint/freepbx/README.md). Every expectation below was derived by
//! hand from Asterisk's rules before the lint was run on the file:
//!
//! - an extension whose name does not start with `_` is a plain string (`pbx.c`: "All
//!   patterns begin with _"), so FreePBX's `exten => .,1,...` in [from-pstn-timecheck], which
//!   its comment calls a catch-all, only ever matches the one-character number `.`;
//! - in a context, exact extensions sort before patterns; patterns sort position by position
//!   (`ext_cmp`: a literal character < `N` < `Z` < `X` < end of pattern... < `.` < `!`), and
//!   the first one with a priority 1 that matches runs;
//! - then `include =>` contexts are searched in order, depth first, each context once; an
//!   include of a context that does not exist is skipped. [from-internal] includes six that
//!   this file does not define: `parkedcalls` (made by Asterisk from features.conf),
//!   `from-internal-custom` (extensions_custom.conf), `ext-local`, `ext-group`, `ext-queues`
//!   and `outbound-allroutes` (generated into extensions_additional.conf). The two included
//!   files are empty stand-ins here: the dial plan is what the published file alone defines;
//! - `_X.`, `_.` match numbers of any length (at least one more character), `!` zero or more.
//!
//! The lint's classification: an exact extension is a destination (`Conflicts`, the fix
//! moves the orbits); a pattern with `.` or `!` is a catch-all (`Catches`, callpark goes in
//! front of it); another pattern is judged by its applications (`MeetMe` is a destination).
//! No other kind of pattern is reached from the contexts checked here, so the pending change
//! for applications the lint cannot follow (AGI, Macro...) changes none of these kinds.

use std::path::PathBuf;

use callpark::lint::asterisk::{self, Dialplan};
use callpark::lint::automaton::NumRange;
use callpark::lint::report::caught_texts;
use callpark::lint::{Certainty, Kind, Report, Target, orbits_from_list};

fn data(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/lint/freepbx")
        .join(p)
}

fn plan() -> Dialplan {
    asterisk::load(&data("extensions.conf")).unwrap()
}

/// The context FreePBX's phones dial from.
const PHONES: &str = "from-internal";

/// The five orbit ranges of the cases below.
const RANGES: [&str; 5] = [
    "5500-5599",
    "*720-*729",
    "*400-*499",
    "800-899",
    "7700-7799",
];

fn check(dp: &Dialplan, ctx: &str, orbits: &str) -> Report {
    let table = orbits_from_list(orbits).unwrap();
    let mut r = Report::new(Target::from_table(&table));
    asterisk::check(dp, ctx, &mut r).unwrap();
    r
}

/// (rule, kind, certainty, orbits as "first-last" runs) of each finding, in order.
fn summary(r: &Report) -> Vec<(String, Kind, Certainty, String)> {
    r.findings
        .iter()
        .map(|f| {
            let runs: Vec<String> = caught_texts(r, &f.caught)
                .into_iter()
                .map(|(a, b)| if a == b { a } else { format!("{a}-{b}") })
                .collect();
            (f.rule.clone(), f.kind, f.certainty, runs.join(","))
        })
        .collect()
}

fn row(rule: &str, kind: Kind, runs: &str) -> (String, Kind, Certainty, String) {
    (rule.to_string(), kind, Certainty::Caught, runs.to_string())
}

const GENERATE: &str = "generate it with `callpark dialplan asterisk > callpark.conf`, add `#include callpark.conf` to extensions.conf and, in [";

#[test]
fn the_published_file_loads_with_its_contexts() {
    let dp = plan();
    // 38 contexts in extensions.conf, none in the two stand-ins.
    assert_eq!(dp.contexts.len(), 38);
    for missing in [
        "parkedcalls",
        "from-internal-custom",
        "ext-local",
        "ext-group",
        "ext-queues",
        "outbound-allroutes",
    ] {
        assert!(dp.context(missing).is_none(), "{missing}");
    }
    // `exten => s,4,AGI,dialparties.agi`: the old `App,args` spelling keeps its arguments.
    let dial = dp.context("macro-dial").unwrap();
    assert!(
        dial.extens[0]
            .apps
            .contains(&"AGI,dialparties.agi".to_string())
    );
}

#[test]
fn search_order_of_the_phones_context() {
    // By hand: [from-internal]'s own `h`, `s` (exact, byte order); then its includes in
    // order, each sorted: exact extensions by bytes (`#` 0x23 < `*` 0x2a < digits < letters),
    // then patterns (`_*72.` < `_*73.` < `_*90.`: '2' < '3' < '9' at the third position;
    // `_8XXXX` < `_8XXX` < `_8XX` < `_8X`: at the position where the shorter one ends, `X`
    // sorts before the end of the pattern). parkedcalls, from-internal-custom, ext-local,
    // ext-group, ext-queues and outbound-allroutes do not exist and add nothing.
    let dp = plan();
    let got: Vec<String> = asterisk::search_order(&dp, PHONES)
        .iter()
        .map(|e| format!("{}@{}", e.exten.name, e.context.name))
        .collect();
    let want = [
        "h@from-internal",
        "s@from-internal",
        "#@app-directory",
        "*411@app-directory",
        "h@app-directory",
        "o@app-directory",
        "*78@app-dnd",
        "*79@app-dnd",
        "*72@app-callforward",
        "*73@app-callforward",
        "*91@app-callforward",
        "h@app-callforward",
        "_*72.@app-callforward",
        "_*73.@app-callforward",
        "_*90.@app-callforward",
        "*70@app-callwaiting",
        "*71@app-callwaiting",
        "*97@app-messagecenter",
        "*98@app-messagecenter",
        "_*98X.@app-messagecenter",
        "*69@app-calltrace",
        "analog_fax@ext-fax",
        "h@ext-fax",
        "in_fax@ext-fax",
        "out_fax@ext-fax",
        "s@ext-fax",
        "888@ext-zapbarge",
        "_8XXXX@ext-meetme",
        "_8XXX@ext-meetme",
        "_8XX@ext-meetme",
        "_8X@ext-meetme",
        "*77@ext-record",
        "*99@ext-record",
        "*43@ext-test",
        "666@ext-test",
        "7777@ext-test",
        "h@ext-test",
    ];
    assert_eq!(got, want);
    assert_eq!(check(&dp, PHONES, "5500-5599").rules, want.len());
}

#[test]
fn nothing_takes_5500_5599() {
    // By hand: no exact extension of the order above has four digits starting 55, the `*`
    // patterns need a leading `*`, the MeetMe patterns a leading 8. Nothing runs 5500-5599:
    // the one finding is that callpark's include is missing.
    let dp = plan();
    let r = check(&dp, PHONES, "5500-5599");
    assert_eq!(
        summary(&r),
        [row("(no extension)", Kind::Catches, "5500-5599")]
    );
    assert_eq!(
        r.findings[0].fix,
        format!("{GENERATE}from-internal]: include => callpark")
    );

    // From the trunks: [from-trunk] includes [from-pstn], which includes from-pstn-custom and
    // ext-did (not defined here) and [from-pstn-timecheck], whose `.` has no `_`: the string
    // ".", not a catch-all, whatever its comment says. Nothing takes the orbits there either.
    let r = check(&dp, "from-trunk", "5500-5599");
    assert_eq!(
        summary(&r),
        [row("(no extension)", Kind::Catches, "5500-5599")]
    );
    assert_eq!(
        r.findings[0].fix,
        format!("{GENERATE}from-trunk]: include => callpark")
    );
    assert_eq!(
        asterisk::winner(&dp, "from-trunk", "5500").map(|(c, e)| (&c.name, &e.name)),
        None
    );
}

#[test]
fn the_external_catch_all_catches_5500_5599() {
    // By hand: [from-sip-external] has one extension, `_.` (any number of one character or
    // more: AbsoluteTimeout, Congestion, Hangup). A pattern with `.`: a catch-all. The fix is
    // the orbits' own pattern in that context: `_55XX` sorts before `_.` (`X` before `.`).
    let r = check(&plan(), "from-sip-external", "5500-5599");
    assert_eq!(
        summary(&r),
        [row("_.@from-sip-external", Kind::Catches, "5500-5599")]
    );
    assert_eq!(
        r.findings[0].fix,
        "in [from-sip-external] add (Asterisk sorts these before `_.`):\n\
         exten => _55XX,1,Goto(callpark,${EXTEN},1)"
    );
}

#[test]
fn the_call_forward_pattern_catches_star_720_729() {
    // By hand: *720-*729 have four characters. Before [app-callforward], only `*411` has
    // four, and differs. In [app-callforward] the exact `*72`, `*73`, `*91` are too short;
    // then `_*72.` ("*72" and at least one more character) takes all ten. A `.` pattern: a
    // catch-all, so Catches, and the fix goes in the catcher's context: `_*72X` sorts before
    // `_*72.` (same first three positions, then `X` 0x0A30 < `.` 0x18000) and matches
    // exactly *720-*729; [app-callforward] has no `_*72X` yet.
    let r = check(&plan(), PHONES, "*720-*729");
    assert_eq!(
        summary(&r),
        [row("_*72.@app-callforward", Kind::Catches, "*720-*729")]
    );
    let f = &r.findings[0];
    assert!(
        f.kind_why.as_deref().unwrap().contains("catch-all"),
        "{:?}",
        f.kind_why
    );
    assert_eq!(
        f.fix,
        "in [app-callforward] add (Asterisk sorts these before `_*72.`):\n\
         exten => _*72X,1,Goto(callpark,${EXTEN},1)"
    );
}

#[test]
fn the_directory_feature_code_conflicts_with_star_400_499() {
    // (Orbits starting with `*` are above *100 in callpark: FreePBX's two-digit feature codes
    // *70-*79 cannot be orbits at all.) By hand, four characters starting `*4`: in
    // [app-directory], the exact `*411` (the company directory: Answer, Wait,
    // AGI(directory,...)); `*43` (echo test) is one character short and the `_*72.`, `_*73.`,
    // `_*90.`, `_*98X.` patterns start `*7`/`*9`. An exact extension: a destination,
    // Conflicts, no insertion fix. The other 99 orbits: no extension.
    //
    // Another range of the same shape (steps of 100, nearest first, below before above) with
    // no destination: *300-*399, *500-*599, then *200-*299.
    let r = check(&plan(), PHONES, "*400-*499");
    assert_eq!(
        summary(&r),
        [
            row("*411@app-directory", Kind::Conflicts, "*411"),
            row("(no extension)", Kind::Catches, "*400-*410,*412-*499"),
        ]
    );
    let f = &r.findings[0];
    assert!(
        f.kind_why.as_deref().unwrap().contains("exact extension"),
        "{:?}",
        f.kind_why
    );
    assert_eq!(
        f.fix,
        "no insertion fix: these numbers are destinations in [from-internal]; \
         use another orbit range instead of *400-*499, e.g. *300-*399, *500-*599, *200-*299 \
         (no destination there), or renumber those extensions"
    );
    assert_eq!(
        r.findings[1].fix,
        format!("{GENERATE}from-internal]: include => callpark")
    );
}

#[test]
fn zap_barge_and_meetme_rooms_conflict_with_800_899() {
    // By hand, three digits starting 8: [ext-zapbarge], included before [ext-meetme], has the
    // exact 888 (ZapBarge): it takes 888. In [ext-meetme], `_8XXXX` and `_8XXX` are longer;
    // `_8XX` takes the other 99. Not a catch-all: its applications decide. Answer, Wait only
    // prepare; the GotoIf goes to priority 4 or 5 of the same extension, both MeetMe
    // (conference rooms): a destination. Both Conflicts.
    //
    // Moving (steps of 100): 700-799 is free in this file, 900-999 free, 600-699 holds 666
    // (ext-test's fax test), 1000 has four digits, 500-599 free. (On a running Asterisk,
    // 700-720 is the parking lot [parkedcalls] makes from features.conf by default; the
    // lint reads only the dial plan files, where that context does not exist.)
    let r = check(&plan(), PHONES, "800-899");
    assert_eq!(
        summary(&r),
        [
            row("888@ext-zapbarge", Kind::Conflicts, "888"),
            row("_8XX@ext-meetme", Kind::Conflicts, "800-887,889-899"),
        ]
    );
    for f in &r.findings {
        assert_eq!(
            f.fix,
            "no insertion fix: these numbers are destinations in [from-internal]; \
             use another orbit range instead of 800-899, e.g. 700-799, 900-999, 500-599 \
             (no destination there), or renumber those extensions",
            "{}",
            f.rule
        );
    }
}

#[test]
fn the_test_extension_conflicts_with_7700_7799() {
    // By hand: only ext-test's exact 7777 (`Goto(from-pstn,s,1)`, FreePBX's "call in as if
    // from a trunk" test) has four digits starting 77. An exact extension is a destination of
    // its own, wherever it goes next. The other 99 orbits: no extension. Moving: 7600-7699
    // and 7800-7899 are free, then 7500-7599.
    let r = check(&plan(), PHONES, "7700-7799");
    assert_eq!(
        summary(&r),
        [
            row("7777@ext-test", Kind::Conflicts, "7777"),
            row("(no extension)", Kind::Catches, "7700-7776,7778-7799"),
        ]
    );
    assert_eq!(
        r.findings[0].fix,
        "no insertion fix: these numbers are destinations in [from-internal]; \
         use another orbit range instead of 7700-7799, e.g. 7600-7699, 7800-7899, 7500-7599 \
         (no destination there), or renumber those extensions"
    );
}

#[test]
fn all_five_ranges_at_once() {
    // Together, each range's findings are those above; a finding for several ranges (the
    // missing include) carries them all, and moves avoid the other four ranges (none of the
    // suggestions above overlaps them).
    let r = check(&plan(), PHONES, &RANGES.join(","));
    let mut got = summary(&r);
    got.sort();
    let mut want = vec![
        row("*411@app-directory", Kind::Conflicts, "*411"),
        row("_*72.@app-callforward", Kind::Catches, "*720-*729"),
        row("888@ext-zapbarge", Kind::Conflicts, "888"),
        row("_8XX@ext-meetme", Kind::Conflicts, "800-887,889-899"),
        row("7777@ext-test", Kind::Conflicts, "7777"),
    ];
    want.sort();
    let (none, rest): (Vec<_>, Vec<_>) = got.into_iter().partition(|f| f.0 == "(no extension)");
    assert_eq!(rest, want);
    assert_eq!(none.len(), 1);
    let mut runs: Vec<&str> = none[0].3.split(',').collect();
    runs.sort();
    let mut want_runs = vec![
        "*400-*410",
        "*412-*499",
        "5500-5599",
        "7700-7776",
        "7778-7799",
    ];
    want_runs.sort();
    assert_eq!(runs, want_runs);
}

/// The ranges a move fix suggests ("e.g. A, B, C (no destination there)").
fn suggested(fix: &str) -> Vec<String> {
    let Some(i) = fix.find("e.g. ") else {
        return Vec::new();
    };
    let rest = &fix[i + 5..];
    let end = rest.find(" (").unwrap();
    rest[..end].split(", ").map(str::to_string).collect()
}

#[test]
fn no_fix_removes_or_shadows_a_destination() {
    // Over every context of the file and every case's range: a Conflicts finding never
    // proposes an extension, an include or a reordering (it moves the orbits); a Catches fix
    // adds only fixed-length extensions matching exactly the orbits it caught, that the
    // context does not already have; and every range a move suggests is free of destinations
    // where it was suggested.
    let dp = plan();
    let mut conflicts = 0;
    let mut inserts = 0;
    for c in &dp.contexts {
        for o in RANGES {
            let r = check(&dp, &c.name, o);
            for f in &r.findings {
                if f.kind == Kind::Conflicts {
                    conflicts += 1;
                    assert!(f.fix.starts_with("no insertion fix"), "{}", f.fix);
                    for bad in ["exten =>", "include =>", "move `include"] {
                        assert!(!f.fix.contains(bad), "{}@{}: {}", f.rule, c.name, f.fix);
                    }
                    for s in suggested(&f.fix) {
                        let again = check(&dp, &c.name, &s);
                        assert!(
                            again.findings.iter().all(|g| g.kind == Kind::Catches),
                            "{s} suggested in [{}] is taken: {:?}",
                            c.name,
                            summary(&again)
                        );
                    }
                    continue;
                }
                let Some(rest) = f.fix.strip_prefix("in [") else {
                    continue;
                };
                let ctx = dp.context(&rest[..rest.find(']').unwrap()]).unwrap();
                for line in f.fix.lines().filter(|l| l.starts_with("exten => ")) {
                    inserts += 1;
                    let name = line["exten => ".len()..].split(',').next().unwrap();
                    assert!(!name.contains('.') && !name.contains('!'), "{line}");
                    assert!(
                        !ctx.extens.iter().any(|e| e.app1.is_some()
                            && e.cid.is_none()
                            && asterisk::ext_cmp(&e.name, name).is_eq()),
                        "`{line}` already in [{}]",
                        ctx.name
                    );
                    // Over every number of the orbits' length, it matches only orbits this
                    // finding caught.
                    for (t, caught) in &f.caught {
                        let range = &r.targets[*t].range;
                        let all = NumRange::new(
                            &range.prefix,
                            range.width,
                            0,
                            10u64.pow(range.width) - 1,
                        );
                        let m = asterisk::exten_matches(name, &all);
                        assert!(m.difference(caught).is_empty(), "{line} beyond {o}");
                    }
                }
            }
        }
    }
    // The cases above: four conflicts in [from-internal] alone, two insertions.
    assert!(conflicts >= 4, "{conflicts}");
    assert!(inserts >= 2, "{inserts}");
}
