//! The checks on what the testbed's FreeSWITCH answered (tests/data/freeswitch/doctor/, the
//! replies to the doctor's own questions), changed one fault at a time.

use super::*;
use crate::config::{Config, PbxConfig};
use crate::doctor::{Options, Status};
use crate::pbx::freeswitch::dialplan::generate;
use crate::pbx::stamp;

const DIALPLAN: &str = include_str!("../../../tests/data/freeswitch/doctor/dialplan.xml");
const DIRECTORY: &str = include_str!("../../../tests/data/freeswitch/doctor/directory.xml");
const SOFIA: &str = include_str!("../../../tests/data/freeswitch/doctor/sofia.xml");
const STREAMS: &str = include_str!("../../../tests/data/freeswitch/doctor/streams.txt");

fn cfg() -> Config {
    let text = include_str!("../../../contrib/callpark.example.toml");
    Config::from_toml(text, "callpark.example.toml").unwrap()
}

fn pbx(cfg: &Config) -> PbxConfig {
    cfg.pbx.iter().find(|p| p.name == "pbx-b").unwrap().clone()
}

/// The captured dial plan with the include the example configuration generates now.
fn current(cfg: &Config) -> String {
    let s = stamp::find(&generate(cfg, "pbx-b")).unwrap();
    DIALPLAN.replacen(
        "<extension name=\"callpark-park\">",
        &format!("<extension name=\"callpark-park\" callpark-stamp=\"{s}\">"),
        1,
    )
}

fn facts(dialplan: String) -> Facts {
    Facts {
        connect: None,
        events: Some("+OK event listener enabled plain".into()),
        dialplan: Some(dialplan),
        directory: Some(DIRECTORY.into()),
        sofia: Some(SOFIA.into()),
        hold_music: Some("local_stream://moh".into()),
        streams: Some(STREAMS.into()),
    }
}

fn run(f: &Facts) -> Vec<Check> {
    let c = cfg();
    checks(&c, &pbx(&c), &Options::default(), f)
}

fn topic<'a>(cs: &'a [Check], t: &str) -> Vec<&'a Check> {
    cs.iter().filter(|c| c.topic == t).collect()
}

#[test]
fn the_current_include_in_the_phones_context_works() {
    let cs = run(&facts(current(&cfg())));
    assert!(cs.iter().all(|c| c.status == Status::Ok), "{cs:#?}");
    let ctx = topic(&cs, "context");
    assert_eq!(ctx.len(), 1);
    // The context phones dial from is found in the directory (alice's user_context).
    assert!(ctx[0].said.contains("callpark-test"), "{ctx:?}");
    assert_eq!(topic(&cs, "lint").len(), 1);
    // pbx-b's ranges name no lot: only the general music.
    assert_eq!(topic(&cs, "music").len(), 1);
}

#[test]
fn an_include_without_the_current_stamp_is_stale() {
    let cs = run(&facts(DIALPLAN.into()));
    let inc = topic(&cs, "include");
    assert_eq!(inc[0].status, Status::Fail);
    assert!(
        inc[0].said.contains("stale") && inc[0].said.contains("no stamp"),
        "{inc:?}"
    );
    assert!(
        inc[0].fix[0].contains("dialplan freeswitch --pool pbx-b"),
        "{inc:?}"
    );
    assert_eq!(inc[0].fix[1], "fs_cli -x reloadxml");
    let other = DIALPLAN.replacen(
        "<extension name=\"callpark-park\">",
        "<extension name=\"callpark-park\" callpark-stamp=\"0123456789abcdef\">",
        1,
    );
    let cs = run(&facts(other));
    assert!(
        topic(&cs, "include")[0]
            .said
            .contains("stamp 0123456789abcdef")
    );
}

#[test]
fn a_dial_plan_without_callpark_says_where_to_include_it() {
    let dp = current(&cfg()).replace("name=\"callpark-", "name=\"other-");
    let cs = run(&facts(dp));
    let inc = topic(&cs, "include");
    assert_eq!(inc[0].status, Status::Fail);
    assert!(inc[0].said.contains("not loaded"), "{inc:?}");
    assert!(
        inc[0].fix.iter().any(|f| f.contains(
            "<X-PRE-PROCESS cmd=\"include\" data=\"callpark/callpark.xml\"/>   (the first line inside <context name=\"callpark-test\">)"
        )),
        "{inc:?}"
    );
}

#[test]
fn a_phone_context_without_the_include_fails() {
    let c = cfg();
    let opts = Options {
        contexts: vec!["callpark-test".into(), "default".into()],
        ..Options::default()
    };
    let dp = current(&c).replace(
        "</section>",
        "<context name=\"default\"><extension name=\"x\"><condition field=\"destination_number\" expression=\"^1$\"/></extension></context></section>",
    );
    let cs = checks(&c, &pbx(&c), &opts, &facts(dp));
    let ctx = topic(&cs, "context");
    assert_eq!(ctx.len(), 2);
    assert_eq!(ctx[0].status, Status::Ok);
    assert_eq!(ctx[1].status, Status::Fail);
    assert!(ctx[1].said.contains("default") && ctx[1].said.contains("does not include"));
}

#[test]
fn a_rule_hunted_before_callpark_that_takes_orbits_is_named() {
    let dp = current(&cfg()).replacen(
        "<extension name=\"callpark-park\"",
        "<extension name=\"six-hundreds\"><condition field=\"destination_number\" expression=\"^6\\d\\d$\"><action application=\"bridge\" data=\"user/$1\"/></condition></extension>\n<extension name=\"callpark-park\"",
        1,
    );
    let cs = run(&facts(dp));
    let lint = topic(&cs, "lint");
    assert!(
        lint.iter().any(|c| c.status == Status::Fail
            && c.said.contains("six-hundreds")
            && c.said.contains("601-699")),
        "{lint:#?}"
    );
}

#[test]
fn a_refused_password_stops_there_and_names_the_setting() {
    let f = Facts {
        connect: Some(Connect::Refused("-ERR invalid".into())),
        ..Facts::default()
    };
    let cs = run(&f);
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0].status, Status::Fail);
    assert!(cs[0].fix[0].contains("$CALLPARK_ESL_PASSWORD"), "{cs:?}");
    let f = Facts {
        connect: Some(Connect::Unreachable("connection refused".into())),
        ..Facts::default()
    };
    let cs = run(&f);
    assert!(cs[0].fix[0].contains("value=\"8021\""), "{cs:?}");
}

#[test]
fn presence_off_and_a_missing_stream_are_warnings() {
    let mut f = facts(current(&cfg()));
    f.sofia = Some(SOFIA.replace(
        "name=\"manage-presence\" value=\"true\"",
        "name=\"manage-presence\" value=\"false\"",
    ));
    f.hold_music = Some("local_stream://nosuch".into());
    let cs = run(&f);
    let p = topic(&cs, "presence");
    assert_eq!(p[0].status, Status::Warn);
    assert!(p[0].fix[0].contains("manage-presence"));
    let m = topic(&cs, "music");
    assert!(
        m.iter()
            .any(|c| c.status == Status::Warn && c.said.contains("nosuch")),
        "{m:?}"
    );
    // Warnings: a park still works.
    assert!(cs.iter().all(|c| c.status != Status::Fail));
}
