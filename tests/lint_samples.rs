//! `callpark lint` on dial plans as their projects ship them (see
//! tests/data/lint/asterisk-samples/README.md and tests/data/lint/freeswitch-vanilla/README.md):
//! which rules conflict with the orbits (they are destinations: move the orbits), which catch
//! them (protect the orbits), and that no proposed fix would clash with what is there.

use std::path::PathBuf;

use callpark::lint::asterisk::{self, Dialplan};
use callpark::lint::report::caught_texts;
use callpark::lint::{Certainty, Kind, Report, Target, orbits_from_list};

fn data(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/lint")
        .join(p)
}

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

fn basic_pbx() -> Dialplan {
    asterisk::load(&data("asterisk-samples/basic-pbx-extensions.conf")).unwrap()
}

fn sample() -> Dialplan {
    asterisk::load(&data("asterisk-samples/extensions.conf.sample")).unwrap()
}

#[test]
fn basic_pbx_orbits_on_the_users_numbers_conflict() {
    // Issue 10: 1100 is the IVR, _11XX the users' phones. Both are destinations: no
    // insertion fix (the old one broke the IVR and took 99 phones), another range instead.
    let r = check(&basic_pbx(), "Internal-Main", "1100-1199");
    assert_eq!(
        summary(&r),
        [
            (
                "1100@Features".to_string(),
                Kind::Conflicts,
                Certainty::Caught,
                "1100".to_string()
            ),
            (
                "_11XX@Dial-Users".to_string(),
                Kind::Conflicts,
                Certainty::Caught,
                "1101-1199".to_string()
            ),
        ]
    );
    let ivr = &r.findings[0];
    assert!(
        ivr.kind_why.as_deref().unwrap().contains("exact extension")
            && ivr.kind_why.as_deref().unwrap().contains("[Main-IVR]"),
        "{:?}",
        ivr.kind_why
    );
    assert_eq!(
        r.findings[1].kind_why.as_deref(),
        Some(
            "it rings the phone of the dialled number (`Dial(PJSIP/${EXTEN}${INTERNAL_DIAL_OPT})`)"
        )
    );
    for f in &r.findings {
        assert!(!f.fix.contains("exten =>"), "{}", f.fix);
        assert!(
            f.fix.contains("e.g. 1000-1099, 1200-1299, 1300-1399"),
            "{}",
            f.fix
        );
    }
    let j = callpark::lint::report::json(&r);
    assert_eq!(j["findings"][0]["kind"], "conflicts");
    assert_eq!(j["findings"][1]["kind"], "conflicts");
}

#[test]
fn basic_pbx_suggested_range_is_only_caught_by_catch_alls() {
    // In the range the lint suggests, only the "invalid number" catch-all is in the way,
    // and that one is to be protected from: a plain insertion fix.
    let r = check(&basic_pbx(), "Internal-Main", "1200-1299");
    assert_eq!(
        summary(&r),
        [(
            "_X.@Dialing-Errors".to_string(),
            Kind::Catches,
            Certainty::Caught,
            "1200-1299".to_string()
        )]
    );
    assert_eq!(
        r.findings[0].fix,
        "in [Dialing-Errors] add (Asterisk sorts these before `_X.`):\n\
         exten => _12XX,1,Goto(callpark,${EXTEN},1)"
    );
}

#[test]
fn basic_pbx_catch_all_in_front_of_the_phones_catches() {
    // Calls from [Local] first go through Internal-Setup's `_X.`, which sends them on: the
    // orbits are to be protected there.
    let r = check(&basic_pbx(), "Local", "1100-1199");
    assert_eq!(
        summary(&r),
        [(
            "_X.@Internal-Setup".to_string(),
            Kind::Catches,
            Certainty::Caught,
            "1100-1199".to_string()
        )]
    );
    assert!(r.findings[0].fix.contains("exten => _11XX,1,Goto(callpark"));
}

#[test]
fn sample_demo_destinations_conflict() {
    let dp = sample();
    // `1000` goes to the demo menu, `_7XXX` pages the phone 7XXX, `8500` is voicemail.
    let r = check(&dp, "default", "1000-1099");
    assert_eq!(
        summary(&r),
        [
            (
                "1000@demo".to_string(),
                Kind::Conflicts,
                Certainty::Caught,
                "1000".to_string()
            ),
            (
                "(no extension)".to_string(),
                Kind::Catches,
                Certainty::Caught,
                "1001-1099".to_string()
            ),
        ]
    );
    // 1200-1299 holds the demo's 1234-1236: not suggested.
    assert!(
        r.findings[0]
            .fix
            .contains("e.g. 1100-1199, 1300-1399, 1400-1499")
    );
    let r = check(&dp, "default", "7000-7099");
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].kind, Kind::Conflicts);
    assert!(
        r.findings[0]
            .kind_why
            .as_deref()
            .unwrap()
            .contains("SIP/${EXTEN}")
    );
    let r = check(&dp, "default", "8500-8599");
    assert_eq!(r.findings[0].kind, Kind::Conflicts);
    assert!(
        r.findings[0]
            .kind_why
            .as_deref()
            .unwrap()
            .contains("VoiceMailMain")
    );
}

#[test]
fn sample_catch_alls_catch() {
    // [page] answers any number with a page: a catch-all, protected with the usual fix.
    let r = check(&sample(), "page", "7000-7099");
    assert_eq!(
        summary(&r),
        [(
            "_X.@page".to_string(),
            Kind::Catches,
            Certainty::Caught,
            "7000-7099".to_string()
        )]
    );
}

#[test]
fn no_fix_adds_an_extension_its_context_already_has() {
    // Asterisk refuses a second extension of the same name in a context ("already in use")
    // and the original loses its first priority: whatever the context and orbits, no fix
    // may propose one.
    for (dp, orbits) in [
        (
            basic_pbx(),
            ["1100-1199", "1000-1099", "6000-6099", "8000-8099", "1-9"],
        ),
        (
            sample(),
            ["1000-1099", "7000-7099", "8500-8599", "600-699", "2-3"],
        ),
    ] {
        for c in &dp.contexts {
            for o in orbits {
                let r = check(&dp, &c.name, o);
                for f in &r.findings {
                    let Some(rest) = f.fix.strip_prefix("in [") else {
                        continue;
                    };
                    let ctx = &rest[..rest.find(']').unwrap()];
                    let ctx = dp.context(ctx).unwrap();
                    for line in f.fix.lines().filter(|l| l.starts_with("exten => ")) {
                        let name = line["exten => ".len()..].split(',').next().unwrap();
                        assert!(
                            !ctx.extens.iter().any(|e| e.app1.is_some()
                                && e.cid.is_none()
                                && asterisk::ext_cmp(&e.name, name).is_eq()),
                            "{} orbits {o}: `{line}` already in [{}]",
                            c.name,
                            ctx.name
                        );
                    }
                }
            }
        }
    }
}

fn vanilla() -> callpark::lint::freeswitch::Dialplan {
    callpark::lint::freeswitch::load(&data("freeswitch-vanilla/default.xml")).unwrap()
}

fn check_fs(orbits: &str) -> Report {
    let table = orbits_from_list(orbits).unwrap();
    let mut r = Report::new(Target::from_table(&table));
    callpark::lint::freeswitch::check(&vanilla(), "default", &mut r).unwrap();
    r
}

#[test]
fn vanilla_local_extensions_conflict_and_catch_alls_catch() {
    // 1000-1019 are the vanilla users (`bridge user/...`); `enum` and `acknowledge_call`
    // answer any number; `unloop` sends looped calls back, depending on a variable.
    let r = check_fs("1000-1099");
    assert_eq!(
        summary(&r),
        [
            (
                "unloop".to_string(),
                Kind::Catches,
                Certainty::MayCatch,
                "1000-1099".to_string()
            ),
            (
                "Local_Extension".to_string(),
                Kind::Conflicts,
                Certainty::Caught,
                "1000-1019".to_string()
            ),
            (
                "enum".to_string(),
                Kind::Catches,
                Certainty::MayCatch,
                "1020-1099".to_string()
            ),
            (
                "acknowledge_call".to_string(),
                Kind::Catches,
                Certainty::Caught,
                "1020-1099".to_string()
            ),
        ]
    );
    let local = &r.findings[1];
    assert!(local.kind_why.as_deref().unwrap().contains("bridge user/"));
    // 1100-1119 are the Skinny phones: the nearest free range is 1200-1299.
    assert!(
        local.fix.contains("e.g. 1200-1299, 1300-1399, 1400-1499"),
        "{}",
        local.fix
    );
    // callpark's include in front of `unloop` would hold 1000-1019 too and take the users'
    // numbers away: its fix asks for the renumbering first.
    assert!(
        r.findings[0]
            .fix
            .starts_with("once the orbits no longer collide with the destinations"),
        "{}",
        r.findings[0].fix
    );
    let j = callpark::lint::report::json(&r);
    assert_eq!(j["findings"][1]["kind"], "conflicts");
    assert_eq!(j["findings"][3]["kind"], "catches");
}

#[test]
fn vanilla_services_conflict() {
    // 3000-3099 are conferences, 5000 the demo IVR, 5001 a conference: destinations.
    let r = check_fs("3000-3099");
    let conf = r
        .findings
        .iter()
        .find(|f| f.rule == "nb_conferences")
        .unwrap();
    assert_eq!(conf.kind, Kind::Conflicts);
    assert!(conf.kind_why.as_deref().unwrap().contains("conference"));
    let r = check_fs("5000-5099");
    let kinds: Vec<(&str, Kind)> = r
        .findings
        .iter()
        .map(|f| (f.rule.as_str(), f.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("unloop", Kind::Catches),
            ("ivr_demo", Kind::Conflicts),
            ("dynamic_conference", Kind::Conflicts),
            ("enum", Kind::Catches),
            ("acknowledge_call", Kind::Catches),
        ]
    );
    assert_eq!(
        r.findings[1].kind_why.as_deref(),
        Some("`^5000$` names one number: a destination of its own")
    );
}

#[test]
fn a_fix_for_one_number_names_that_number() {
    // 9199 is free in the vanilla plan but for the catch-alls: the fix is callpark's include
    // in front of them, as is, never a transfer to a context no file defines.
    let r = check_fs("9199");
    let f = r
        .findings
        .iter()
        .find(|f| f.rule == "acknowledge_call")
        .unwrap();
    assert_eq!(f.kind, Kind::Catches);
    assert!(
        f.fix
            .starts_with("write callpark's extensions with `callpark dialplan freeswitch")
            && f.fix
                .contains(r#"above <extension name="acknowledge_call">"#)
            && !f.fix.contains("XML callpark"),
        "{}",
        f.fix
    );
}

#[test]
fn readme_steps_on_vanilla_leave_nothing_to_report() {
    // README's "Use with your FreeSWITCH", step 2, on the vanilla default.xml: the generated
    // file in dialplan/default/00_callpark.xml, its include line first in `default`. The
    // vanilla file includes `default/*.xml` again near its end: the same extensions twice,
    // both callpark's. With the example configuration's orbits (its own 601-699 and the other
    // pool's 701-799 and *7000-*7099), callpark's extensions take every orbit first.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("default")).unwrap();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(
        repo.join("dialplan/freeswitch/callpark.xml"),
        dir.path().join("default/00_callpark.xml"),
    )
    .unwrap();
    let vanilla = std::fs::read_to_string(data("freeswitch-vanilla/default.xml")).unwrap();
    let open = "<context name=\"default\">";
    assert_eq!(vanilla.matches(open).count(), 1);
    let edited = vanilla.replace(
        open,
        &format!("{open}\n    <X-PRE-PROCESS cmd=\"include\" data=\"default/00_callpark.xml\"/>"),
    );
    std::fs::write(dir.path().join("default.xml"), edited).unwrap();
    let dp = callpark::lint::freeswitch::load(&dir.path().join("default.xml")).unwrap();
    let table = orbits_from_list("601-699,701-799,*7000-*7099").unwrap();
    let mut r = Report::new(Target::from_table(&table));
    callpark::lint::freeswitch::check(&dp, "default", &mut r).unwrap();
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    // Untouched, the vanilla file's catch-alls take the orbits, and every fix is that
    // include line, put above the first of them; the one real destination among the
    // orbits (`eavesdrop` on 779) is a conflict, whose fix renumbers.
    let r = check_fs("601-699,701-799,*7000-*7099");
    for f in &r.findings {
        match f.kind {
            Kind::Catches => assert!(
                f.fix
                    .contains("<X-PRE-PROCESS cmd=\"include\" data=\"callpark.xml\"/> above")
                    && !f.fix.contains("XML callpark"),
                "{}",
                f.fix
            ),
            Kind::Conflicts => {
                assert_eq!(f.rule, "eavesdrop");
                assert!(f.fix.contains("use another orbit range"), "{}", f.fix);
            }
        }
    }
}
