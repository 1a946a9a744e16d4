//! The order the lint assumes for a FreeSWITCH dialplan is what the real FreeSWITCH runs: the
//! vanilla `default.xml` (tests/data/lint/freeswitch-vanilla) is loaded into the testbed as
//! context `lintchk`, numbers are dialled into it, and FreeSWITCH's own log says which
//! extension took each one. It must be the first one the lint says surely catches it.

use callpark_testkit as support;

use std::time::Duration;

use callpark::lint::{Certainty, Report, Target, orbits_from_list};
use support::fs::{Esl, fb, fs_log, fs_testbed, uuid};

/// The extensions FreeSWITCH parsed for `loopback/<number>-b` in the log since `mark`, in
/// order, and whether an extension has begun to run (the hunt is over).
fn hunted(log: &str, number: &str) -> (Vec<String>, bool) {
    let name = format!("loopback/{number}-b ");
    let mut parsed = Vec::new();
    let mut ran = false;
    for l in log.lines().filter(|l| l.contains(&name)) {
        if let Some(rest) = l.split("parsing [lintchk->").nth(1) {
            parsed.extend(rest.split(']').next().map(str::to_string));
        }
        ran |= l.contains(" EXECUTE ");
    }
    (parsed, ran)
}

/// Dials `number` into `lintchk`; the extension FreeSWITCH gave it to.
async fn dial(esl: &Esl, number: &str) -> String {
    let mark = fs_log().len();
    let a = uuid();
    let r = esl
        .bgapi(&format!(
            "originate {{origination_uuid={a},originate_timeout=5}}loopback/{number}/lintchk &park()"
        ))
        .await;
    assert!(r.starts_with("+OK"), "originate: {r}");
    let taken = support::wait_for(
        &format!("{number} hunted in lintchk"),
        Duration::from_secs(10),
        || async {
            let log = fs_log();
            let (parsed, ran) = hunted(&log[mark.min(log.len())..], number);
            (!parsed.is_empty() && ran).then_some(parsed)
        },
    )
    .await;
    esl.api(&format!("uuid_kill {a}")).await;
    esl.api(&format!("hupall NORMAL_CLEARING dialed_ext {number}"))
        .await;
    // The last extension parsed is the one that took the call: the hunt stops there.
    taken.last().unwrap().clone()
}

#[tokio::test]
async fn the_vanilla_dialplan_gives_each_number_to_the_extension_the_lint_names() {
    let _turn = support::exclusive_of("freeswitch").await;
    let esl = fs_testbed().await;
    let src = format!(
        "{}/tests/data/lint/freeswitch-vanilla/default.xml",
        support::REPO
    );
    let text = std::fs::read_to_string(&src).unwrap();
    let renamed = text.replacen(
        r#"<context name="default">"#,
        r#"<context name="lintchk">"#,
        1,
    );
    assert_ne!(renamed, text, "the vanilla file has its default context");
    let path = std::path::Path::new(&fb("ROOT")).join("run/conf/dialplan/lintchk.xml");
    std::fs::write(&path, renamed).unwrap();
    let r = esl.api("reloadxml").await;
    assert!(r.contains("+OK"), "reloadxml: {r}");

    let dp = callpark::lint::freeswitch::load(std::path::Path::new(&src)).unwrap();
    let mut checked = Vec::new();
    for number in ["1005", "1110", "3005", "5000", "5001", "9199"] {
        let mut report = Report::new(Target::from_table(&orbits_from_list(number).unwrap()));
        callpark::lint::freeswitch::check(&dp, "default", &mut report).unwrap();
        // Rules the lint cannot decide for sure (variables, time of day) do not take a plain
        // test call; the first sure one must be where FreeSWITCH's hunt ends.
        let Some(expected) = report
            .findings
            .iter()
            .find(|f| f.certainty == Certainty::Caught)
            .map(|f| f.rule.clone())
        else {
            continue;
        };
        let took = dial(&esl, number).await;
        println!("{number}: FreeSWITCH gave it to `{took}`, the lint says `{expected}`");
        assert_eq!(took, expected, "{number}: FreeSWITCH and the lint disagree");
        checked.push(number);
    }
    assert!(checked.len() >= 4, "only {checked:?} checked");

    // The fix the lint proposes for a number a catch-all takes, applied where it says: the
    // include line of callpark's file above the extension it names. A stand-in for the file
    // `callpark dialplan freeswitch` writes holds 9199; the number then goes to it first.
    let number = "9199";
    let mut report = Report::new(Target::from_table(&orbits_from_list(number).unwrap()));
    callpark::lint::freeswitch::check(&dp, "default", &mut report).unwrap();
    let fix = &report
        .findings
        .iter()
        .find(|f| f.certainty == Certainty::Caught)
        .expect("a catch-all takes 9199")
        .fix;
    let include = fix
        .split_once("put ")
        .and_then(|(_, r)| r.split_once(" above "))
        .map(|(l, _)| l.to_string())
        .unwrap_or_else(|| panic!("the include line in the fix: {fix}"));
    assert_eq!(
        include,
        r#"<X-PRE-PROCESS cmd="include" data="callpark.xml"/>"#
    );
    let at: usize = fix
        .split_once("default.xml:")
        .and_then(|(_, r)| r.split(')').next())
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("where to put the fix: {fix}"));
    std::fs::write(
        path.with_file_name("callpark.xml"),
        "<include>\n<extension name=\"callpark-orbits\">\n<condition field=\"destination_number\" expression=\"^9199$\">\n<action application=\"park\"/>\n</condition>\n</extension>\n</include>\n",
    )
    .unwrap();
    let mut fixed: Vec<String> = text.lines().map(str::to_string).collect();
    fixed.insert(at - 1, include);
    let fixed = fixed.join("\n").replacen(
        r#"<context name="default">"#,
        r#"<context name="lintchk">"#,
        1,
    );
    std::fs::write(&path, fixed).unwrap();
    let r = esl.api("reloadxml").await;
    assert!(r.contains("+OK"), "reloadxml: {r}");
    let took = dial(&esl, number).await;
    assert_eq!(took, "callpark-orbits", "{number} after the fix:\n{fix}");

    std::fs::remove_file(&path).unwrap();
    std::fs::remove_file(path.with_file_name("callpark.xml")).unwrap();
    esl.api("reloadxml").await;
}
