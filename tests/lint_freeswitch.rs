//! FreeSWITCH dialplan XML: document order, conditions with `break`, anti-actions,
//! `continue`, conditions on other fields ("may catch"), and X-PRE-PROCESS includes.

use std::path::PathBuf;

use callpark::lint::freeswitch::{self, Dialplan};
use callpark::lint::report::caught_texts;
use callpark::lint::{Certainty, Kind, Report, Target, orbits_from_list};

fn check(dp: &Dialplan, orbits: &str) -> Report {
    let table = orbits_from_list(orbits).unwrap();
    let mut r = Report::new(Target::from_table(&table));
    freeswitch::check(dp, "default", &mut r).unwrap();
    r
}

/// (rule, certainty, runs of orbits as text).
type Seen = (String, Certainty, Vec<(String, String)>);

fn summary(r: &Report) -> Vec<Seen> {
    r.findings
        .iter()
        .map(|f| (f.rule.clone(), f.certainty, caught_texts(r, &f.caught)))
        .collect()
}

fn run(s: &str, e: &str) -> Seen {
    (
        s.to_string(),
        Certainty::Caught,
        vec![(
            e.split('-').next().unwrap().to_string(),
            e.split('-').nth(1).unwrap().to_string(),
        )],
    )
}

fn context(body: &str) -> Dialplan {
    freeswitch::parse_str(
        &format!("<include>\n<context name=\"default\">\n{body}\n</context>\n</include>\n"),
        "t.xml",
    )
    .unwrap()
}

const CALLPARK: &str = r#"<extension name="callpark-orbits">
  <condition field="destination_number" expression="^(7\d\d)$">
    <action application="transfer" data="$1 XML callpark"/>
  </condition>
</extension>"#;

#[test]
fn example_default_xml() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("normalization/examples/freeswitch/default.xml");
    let dp = freeswitch::load(&path).unwrap();
    let r = check(&dp, "701-799,*7000-*7099");
    // By hand: unloop tests other fields (may catch all); set-domain continues and only sets;
    // Local_Extension ($${local_ext} = ^(7[0-4]\d)$) bridges 701-749; the night rule may take
    // every *7xxx; the included pickup groups take *7000-*7019 (`pickup`: a service of its
    // own, so a conflict); callpark-orbits the rest.
    let got = summary(&r);
    assert_eq!(
        got,
        [
            (
                "unloop".to_string(),
                Certainty::MayCatch,
                vec![
                    ("701".to_string(), "799".to_string()),
                    ("*7000".to_string(), "*7099".to_string())
                ]
            ),
            run("Local_Extension", "701-749"),
            (
                "night-star-codes".to_string(),
                Certainty::MayCatch,
                vec![("*7000".to_string(), "*7099".to_string())]
            ),
            run("pickup-groups", "*7000-*7019"),
        ]
    );
    let pickup = &r.findings[3];
    assert!(pickup.file.ends_with("default/01_feature_codes.xml"));
    assert_eq!(pickup.line, 3);
    // Local_Extension rings the phones 701-749: a conflict, whose fix is another range.
    assert_eq!(r.findings[1].kind, Kind::Conflicts);
    assert!(
        r.findings[1]
            .fix
            .contains("use another orbit range instead of 701-799"),
        "{}",
        r.findings[1].fix
    );
    assert_eq!(r.findings[3].kind, Kind::Conflicts);
    assert!(
        r.findings[3]
            .fix
            .contains("use another orbit range instead of *7000-*7099"),
        "{}",
        r.findings[3].fix
    );
    // The night rule may transfer the star codes elsewhere: callpark's own extension goes
    // in front of it, moved from where it is, once *7000-*7019 no longer are pickup groups.
    assert_eq!(r.findings[2].kind, Kind::Catches);
    assert!(
        r.findings[2]
            .fix
            .starts_with("once the orbits no longer collide with the destinations (see the conflicts), move <extension name=\"callpark-orbits\"> ("),
        "{}",
        r.findings[2].fix
    );
}

#[test]
fn generated_include_first_clears_the_example() {
    // The example dial plan with the include `callpark dialplan freeswitch` writes for the
    // example table (dialplan/freeswitch/callpark.xml) as the first line of the context: its
    // callpark-remote-* extensions take 701-799 and *7000-*7099 before anything else.
    let dir = tempfile::tempdir().unwrap();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = repo.join("normalization");
    std::fs::create_dir(dir.path().join("default")).unwrap();
    std::fs::copy(
        root.join("examples/freeswitch/default/01_feature_codes.xml"),
        dir.path().join("default/01_feature_codes.xml"),
    )
    .unwrap();
    std::fs::copy(
        repo.join("dialplan/freeswitch/callpark.xml"),
        dir.path().join("callpark.xml"),
    )
    .unwrap();
    let original = std::fs::read_to_string(root.join("examples/freeswitch/default.xml")).unwrap();
    let write = |text: &str| {
        std::fs::write(dir.path().join("default.xml"), text).unwrap();
        freeswitch::load(&dir.path().join("default.xml")).unwrap()
    };
    // Included last, it changes nothing: the example's findings stay.
    let last = write(&original.replace(
        "</context>",
        "  <X-PRE-PROCESS cmd=\"include\" data=\"callpark.xml\"/>\n  </context>",
    ));
    assert!(!check(&last, "701-799,*7000-*7099").findings.is_empty());
    let first = write(&original.replace(
        "<context name=\"default\">",
        "<context name=\"default\">\n    <X-PRE-PROCESS cmd=\"include\" data=\"callpark.xml\"/>",
    ));
    let r = check(&first, "701-799,*7000-*7099");
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    // Its warehouse range (601-699, this pool's own) is held too.
    assert!(check(&first, "601-699").findings.is_empty());
}

#[test]
fn break_and_anti_actions() {
    // on-true: a true first condition stops the extension, so only non-matching numbers go on
    // to the second condition; anti-actions of a false condition run.
    let dp = context(&format!(
        r#"<extension name="odd">
  <condition field="destination_number" expression="^7[0-4]\d$" break="on-true"/>
  <condition field="destination_number" expression="^(7[5-7]\d)$">
    <action application="log" data="INFO late"/>
    <anti-action application="bridge" data="user/operator"/>
  </condition>
</extension>
{CALLPARK}"#
    ));
    let r = check(&dp, "701-799");
    // 750-779 pass the second condition, 780-799 fail it with an anti-action: both proceed,
    // so the extension takes them. 701-749 pass the first condition and break there: that
    // condition was the last evaluated and it matched, so mod_dialplan_xml ends the hunt at
    // this extension too, with nothing queued ("No Route"): caught as well.
    assert_eq!(summary(&r), [run("odd", "701-799")]);

    // break="never" goes on after a false condition; "always" stops after any.
    let dp = context(&format!(
        r#"<extension name="never">
  <condition field="destination_number" expression="^70\d$" break="never"/>
  <condition field="destination_number" expression="^(71\d)$">
    <action application="bridge" data="user/$1"/>
  </condition>
</extension>
<extension name="always">
  <condition field="destination_number" expression="^72\d$" break="always"/>
  <condition field="destination_number" expression="^(72\d|73\d)$">
    <action application="bridge" data="user/$1"/>
  </condition>
</extension>
{CALLPARK}"#
    ));
    let r = check(&dp, "701-799");
    // never: 701-709 pass the first condition, go on, and fail the second (no anti-action):
    // the last evaluated condition did not match, the hunt goes on. always: 720-729 match
    // the first condition and stop there, matched: the hunt ends at it ("No Route").
    assert_eq!(
        summary(&r),
        [run("never", "710-719"), run("always", "720-729")]
    );
}

#[test]
fn inline_sets_on_other_fields_never_take_a_number_the_last_condition_refuses() {
    // A valet-park extension as FreeSWITCH-based distributions write it: conditions on
    // variables with break="never" whose actions all run inline (during the hunt, queuing
    // nothing), then the number. For 7000-7099 the last condition evaluated is the number's,
    // false and without anti-actions, whatever the variables hold: never taken.
    let dp = context(
        r#"<extension name="valet_park" continue="false">
  <condition field="${sip_refer_to}" expression="^.+$" break="never">
    <action application="set" data="referred_by_user=${sip_refer_to}" inline="true"/>
  </condition>
  <condition field="${sip_h_Referred-By}" expression="^&lt;sip:(.*)@.*$" break="never">
    <action application="set" data="referred_by_user=$1" inline="true"/>
  </condition>
  <condition field="${referred_by_user}" expression="^.+$" break="never">
    <action application="set" data="valet_hold_music=local_stream://moh" inline="true"/>
  </condition>
  <condition field="destination_number" expression="^(\*59\d\d)$">
    <action application="answer"/>
    <action application="valet_park" data="valet_lot $1"/>
  </condition>
</extension>
<extension name="callpark-orbits">
  <condition field="destination_number" expression="^(70\d\d)$"/>
</extension>"#,
    );
    let table = callpark::lint::orbits_from_list("7000-7099,*5950-*5999").unwrap();
    let mut r = Report::new(Target::from_table(&table));
    freeswitch::check(&dp, "default", &mut r).unwrap();
    // *5950-*5999 are the extension's own numbers (valet_park): a conflict, and sure, as the
    // conditions before it never stop the hunt.
    assert_eq!(summary(&r), [run("valet_park", "*5950-*5999")]);
    assert_eq!(r.findings[0].kind, Kind::Conflicts);

    // A queued (not inline) routing action runs once the call is taken, even when this
    // extension does not take it: it catches.
    let dp = context(&format!(
        r#"<extension name="tag">
  <condition field="${{sip_refer_to}}" expression="^.+$" break="never">
    <action application="transfer" data="operator XML default"/>
  </condition>
  <condition field="destination_number" expression="^(\*59\d\d)$"/>
</extension>
{CALLPARK}"#
    ));
    let r = check(&dp, "701-799");
    assert_eq!(
        summary(&r),
        [(
            "tag".to_string(),
            Certainty::MayCatch,
            vec![("701".to_string(), "799".to_string())]
        )]
    );
    assert_eq!(
        r.findings[0].reason.as_deref(),
        Some("depends on field `${sip_refer_to}`")
    );
}

#[test]
fn exact_numbers_in_an_alternation_are_destinations() {
    // Voicemail main through a script, on three exact numbers: *4000 is its number, a
    // conflict (renumber), never a catch whose fix would move callpark above it.
    let dp = context(&format!(
        r#"<extension name="vmain">
  <condition field="destination_number" expression="^vmain$|^\*4000$|^\*98$">
    <action application="answer"/>
    <action application="lua" data="app.lua voicemail"/>
  </condition>
</extension>
<extension name="quoted">
  <condition field="destination_number" expression="^\Q*4001\E$">
    <action application="lua" data="app.lua voicemail"/>
  </condition>
</extension>
<extension name="group">
  <condition field="destination_number" expression="^(\*4002|\*4003)$">
    <action application="transfer" data="$1 XML features"/>
  </condition>
</extension>
<extension name="mixed">
  <condition field="destination_number" expression="^\*4004$|^\*40(\d+)$">
    <action application="transfer" data="$1 XML features"/>
  </condition>
</extension>
{CALLPARK}"#
    ));
    let r = check(&dp, "*4000-*4099");
    let got: Vec<(&str, Kind, String)> = r
        .findings
        .iter()
        .map(|f| {
            (
                f.rule.as_str(),
                f.kind,
                caught_texts(&r, &f.caught)
                    .iter()
                    .map(|(a, b)| {
                        if a == b {
                            a.clone()
                        } else {
                            format!("{a}-{b}")
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(","),
            )
        })
        .collect();
    // vmain: *4000 (names it). quoted: `\Q*4001\E` is the literal *4001 (PCRE), decided, not
    // "undecided". group: both numbers named one by one. mixed: *4004 is named exactly, the
    // rest of *40xx is a catch-all's: one finding, a conflict, as *4004 is its own number.
    assert_eq!(
        got,
        [
            ("vmain", Kind::Conflicts, "*4000".to_string()),
            ("quoted", Kind::Conflicts, "*4001".to_string()),
            ("group", Kind::Conflicts, "*4002-*4003".to_string()),
            ("mixed", Kind::Conflicts, "*4004-*4099".to_string()),
        ]
    );
    assert!(r.findings.iter().all(|f| !f.fix.contains("move ")));
}

#[test]
fn callparks_own_include_is_recognised_and_is_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(
        repo.join("dialplan/freeswitch/callpark.xml"),
        dir.path().join("callpark.xml"),
    )
    .unwrap();
    let body = |include_at_top: bool| {
        let inc = r#"<X-PRE-PROCESS cmd="include" data="callpark.xml"/>"#;
        format!(
            "<include>\n<context name=\"default\">\n{}<extension name=\"catch\">\n  <condition field=\"destination_number\" expression=\"^(\\d+)$\">\n    <action application=\"transfer\" data=\"$1 XML public\"/>\n  </condition>\n</extension>\n{}</context>\n</include>\n",
            if include_at_top {
                format!("{inc}\n")
            } else {
                String::new()
            },
            if include_at_top {
                String::new()
            } else {
                format!("{inc}\n")
            },
        )
    };
    // The include first: every extension of it is callpark's (the park code, the remote
    // ranges, the orbits, the fallbacks): nothing to report.
    std::fs::write(dir.path().join("default.xml"), body(true)).unwrap();
    let dp = freeswitch::load(&dir.path().join("default.xml")).unwrap();
    let r = check(&dp, "601-699,701-799,*7000-*7099");
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    // The include after a catch-all: the fix moves the include line, naming where it is.
    std::fs::write(dir.path().join("default.xml"), body(false)).unwrap();
    let dp = freeswitch::load(&dir.path().join("default.xml")).unwrap();
    let r = check(&dp, "601-699");
    assert_eq!(r.findings.len(), 1, "{:#?}", r.findings);
    let fix = &r.findings[0].fix;
    assert!(
        fix.starts_with(r#"move the line <X-PRE-PROCESS cmd="include" data="callpark.xml"/> ("#)
            && fix.contains("default.xml:8) above <extension name=\"catch\">"),
        "{fix}"
    );
    // Without the include: the fix is the include line, never a transfer to a context no
    // file defines.
    let dp = context(
        r#"<extension name="catch"><condition field="destination_number" expression="^(\d+)$">
  <action application="transfer" data="$1 XML public"/></condition></extension>"#,
    );
    let r = check(&dp, "601-699");
    let fix = &r.findings[0].fix;
    assert!(
        fix.contains(
            r#"<X-PRE-PROCESS cmd="include" data="callpark.xml"/> above <extension name="catch">"#
        ) && !fix.contains("XML callpark"),
        "{fix}"
    );
}

#[test]
fn continue_true_only_routes_count() {
    let dp = context(&format!(
        r#"<extension name="vars" continue="true">
  <condition field="destination_number" expression="^(\d+)$">
    <action application="set" data="called=$1"/>
  </condition>
</extension>
<extension name="rewrite" continue="true">
  <condition field="destination_number" expression="^(79\d)$">
    <action application="set" data="destination_number=1$1"/>
  </condition>
</extension>
{CALLPARK}"#
    ));
    let r = check(&dp, "701-799");
    assert_eq!(summary(&r), [run("rewrite", "790-799")]);
}

#[test]
fn pcre_lookaround_falls_back_and_callerid_may_catch() {
    let dp = context(&format!(
        r#"<extension name="not-70x">
  <condition field="destination_number" expression="^(?!70)(7\d\d)$">
    <action application="bridge" data="user/$1"/>
  </condition>
</extension>
<extension name="vip">
  <condition field="caller_id_number" expression="^1000$"/>
  <condition field="destination_number" expression="^(70\d)$">
    <action application="bridge" data="user/vip"/>
  </condition>
</extension>
{CALLPARK}"#
    ));
    let r = check(&dp, "701-799");
    assert_eq!(
        summary(&r),
        [
            run("not-70x", "710-799"),
            (
                "vip".to_string(),
                Certainty::MayCatch,
                vec![("701".to_string(), "709".to_string())]
            )
        ]
    );
    assert_eq!(
        r.findings[1].reason.as_deref(),
        Some("depends on field `caller_id_number`")
    );
}

#[test]
fn bad_xml_names_file_and_line() {
    let e = freeswitch::parse_str(
        "<include>\n<context name=\"default\">\n<extension name=\"x\">\n</context>\n",
        "bad.xml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("bad.xml:4: XML"), "{e}");
}

#[test]
fn what_the_extension_does_decides_catches_or_conflicts() {
    let dp = context(
        r#"
<extension name="phones"><condition field="destination_number" expression="^(7[0-4]\d)$">
  <action application="set" data="call_timeout=30"/>
  <action application="bridge" data="user/$1@${domain_name}"/></condition></extension>
<extension name="out"><condition field="destination_number" expression="^(75\d)$">
  <action application="bridge" data="sofia/gateway/carrier/$1"/></condition></extension>
<extension name="vm"><condition field="destination_number" expression="^(76\d)$">
  <action application="voicemail" data="default ${domain_name} $1"/></condition></extension>
<extension name="elsewhere"><condition field="destination_number" expression="^(77\d)$">
  <action application="transfer" data="$1 XML public"/></condition></extension>
<extension name="one"><condition field="destination_number" expression="^(780)$">
  <action application="playback" data="hello.wav"/></condition></extension>
<extension name="all"><condition field="destination_number" expression="^(\d+)$">
  <action application="bridge" data="user/$1"/></condition></extension>
"#,
    );
    let kinds: Vec<(String, Kind)> = dp.contexts[0]
        .extensions
        .iter()
        .map(|x| (x.name.clone(), freeswitch::classify(x).0))
        .collect();
    let k = |n: &str| kinds.iter().find(|(m, _)| m == n).unwrap().1;
    assert_eq!(k("phones"), Kind::Conflicts);
    assert_eq!(k("out"), Kind::Catches);
    assert_eq!(k("vm"), Kind::Conflicts);
    assert_eq!(k("elsewhere"), Kind::Catches);
    assert_eq!(k("one"), Kind::Conflicts);
    // Any length: a catch-all, even when it bridges to users.
    assert_eq!(k("all"), Kind::Catches);
    let r = check(&dp, "701-799");
    let got: Vec<(&str, Kind)> = r
        .findings
        .iter()
        .map(|f| (f.rule.as_str(), f.kind))
        .collect();
    assert_eq!(
        got,
        [
            ("phones", Kind::Conflicts),
            ("out", Kind::Catches),
            ("vm", Kind::Conflicts),
            ("elsewhere", Kind::Catches),
            ("one", Kind::Conflicts),
            ("all", Kind::Catches),
        ]
    );
    // The catch-all's fix puts callpark's include in front of it.
    assert!(
        r.findings[5]
            .fix
            .contains("data=\"callpark.xml\"/> above <extension name=\"all\"> (t.xml:15)"),
        "{}",
        r.findings[5].fix
    );
}

#[test]
fn a_variable_set_inline_before_is_decided() {
    // `lot` is set inline by an unconditional condition, so every number reaching the next
    // condition has it: `^main$` holds, `^side$` does not. `maybe` is set only when the
    // caller id matches, so a test on it stays "may".
    let dp = context(
        r#"<extension name="known-true">
  <condition>
    <action application="set" data="lot=main" inline="true"/>
  </condition>
  <condition field="${lot}" expression="^main$"/>
  <condition field="destination_number" expression="^(70\d)$">
    <action application="transfer" data="$1 XML lots"/>
  </condition>
</extension>
<extension name="known-false">
  <condition>
    <action application="set" data="lot=main" inline="true"/>
  </condition>
  <condition field="${lot}" expression="^side$"/>
  <condition field="destination_number" expression="^(71\d)$">
    <action application="transfer" data="$1 XML lots"/>
  </condition>
</extension>
<extension name="unknown">
  <condition field="caller_id_number" expression="^1000$" break="never">
    <action application="set" data="maybe=yes" inline="true"/>
  </condition>
  <condition field="${maybe}" expression="^yes$"/>
  <condition field="destination_number" expression="^(72\d)$">
    <action application="transfer" data="$1 XML lots"/>
  </condition>
</extension>
<extension name="callpark-orbits">
  <condition field="destination_number" expression="^(7\d\d)$"/>
</extension>"#,
    );
    let r = check(&dp, "701-799");
    assert_eq!(
        summary(&r),
        [
            run("known-true", "701-709"),
            (
                "unknown".to_string(),
                Certainty::MayCatch,
                vec![("720".to_string(), "729".to_string())]
            )
        ]
    );
    assert_eq!(
        r.findings[1].reason.as_deref(),
        Some("depends on field `caller_id_number`")
    );
}

#[test]
fn expression_child_element_is_read_as_freeswitch_reads_it() {
    // As FreeSWITCH's own default.xml writes expressions that need `<` or `&`: the text of
    // an <expression> child, here CDATA, stands for the attribute.
    let dp = context(&format!(
        r#"<extension name="Local_Extension">
  <condition field="destination_number">
    <expression><![CDATA[^(7[0-4]\d)$]]></expression>
    <action application="bridge" data="user/$1@${{domain_name}}"/>
  </condition>
</extension>
<extension name="conferences">
  <condition field="destination_number">
    <expression>^(3\d\d\d)$</expression>
    <action application="conference" data="$1@default"/>
  </condition>
</extension>
{CALLPARK}"#
    ));
    // 701-749 are Local_Extension's (read from the CDATA); the conferences' 3xxx takes none.
    assert_eq!(
        summary(&check(&dp, "701-799")),
        [run("Local_Extension", "701-749")]
    );
    assert_eq!(
        summary(&check(&dp, "3000-3099")),
        [run("conferences", "3000-3099")]
    );

    // The child wins over the attribute (mod_dialplan_xml looks for it first), and an empty
    // child is the empty expression, which matches every number.
    let dp = context(&format!(
        r#"<extension name="child_first">
  <condition field="destination_number" expression="^(7\d\d)$">
    <expression><![CDATA[^(8\d\d)$]]></expression>
    <action application="bridge" data="user/$1"/>
  </condition>
</extension>
<extension name="empty_child">
  <condition field="destination_number" expression="^(8\d\d)$">
    <expression></expression>
    <action application="transfer" data="operator XML default"/>
  </condition>
</extension>
{CALLPARK}"#
    ));
    assert_eq!(
        summary(&check(&dp, "701-799")),
        [run("empty_child", "701-799")]
    );

    // FreeSWITCH keeps the blanks around the CDATA: "\n  ^(7\d\d)$\n" has text before `^`,
    // so it never matches (decided: no finding at all), and the hunt goes on to callpark.
    let dp = context(&format!(
        r#"<extension name="blanks">
  <condition field="destination_number">
    <expression>
      <![CDATA[^(7\d\d)$]]>
    </expression>
    <action application="bridge" data="user/$1"/>
  </condition>
</extension>
{CALLPARK}"#
    ));
    let c = &dp.contexts[0].extensions[0].conditions[0];
    assert_eq!(
        c.destination_exprs(),
        ["\n      ^(7\\d\\d)$\n    "],
        "the expression as FreeSWITCH reads it"
    );
    let r = check(&dp, "701-799");
    assert!(r.findings.is_empty(), "{:#?}", summary(&r));
}

#[test]
fn regex_all_any_xor_on_the_number_are_decided() {
    // regex="any": one <regex> matching is enough (710-729); regex="all": every one must
    // (740-749); regex="xor": exactly one (760-769, 780-789). 770-779 match both: the
    // condition is false, but mod_dialplan_xml leaves `proceed` at the last <regex>'s result
    // (true), so with no anti-action the extension still ends the hunt there: 760-789.
    let dp = context(&format!(
        r#"<extension name="operators">
  <condition regex="any">
    <regex field="destination_number" expression="^(71\d)$"/>
    <regex field="destination_number"><expression><![CDATA[^(72\d)$]]></expression></regex>
    <action application="bridge" data="user/${{destination_number}}"/>
  </condition>
</extension>
<extension name="sales">
  <condition regex="all">
    <regex field="destination_number" expression="^7[3-4]\d$"/>
    <regex field="destination_number" expression="^74\d$"/>
    <action application="bridge" data="user/${{destination_number}}"/>
  </condition>
</extension>
<extension name="support">
  <condition regex="xor">
    <regex field="destination_number" expression="^7[6-7]\d$"/>
    <regex field="destination_number" expression="^7[7-8]\d$"/>
    <action application="bridge" data="user/${{destination_number}}"/>
  </condition>
</extension>
{CALLPARK}"#
    ));
    let r = check(&dp, "701-799");
    assert_eq!(
        summary(&r),
        [
            run("operators", "710-729"),
            run("sales", "740-749"),
            run("support", "760-789"),
        ]
    );

    // mod_dialplan_xml keeps the match of the last <regex> with a capture: an "all" that
    // fails after a capturing <regex> matched still "proceeds", so a false condition with no
    // anti-action ends the hunt at this extension (nothing queued: "No Route"). Without the
    // capture the same extension lets 701-749 and 760-799 go on to callpark.
    let ext = |first: &str| {
        context(&format!(
            r#"<extension name="vip">
  <condition regex="all">
    <regex field="destination_number" expression="{first}"/>
    <regex field="destination_number" expression="^75\d$"/>
    <action application="bridge" data="user/vip"/>
  </condition>
</extension>
{CALLPARK}"#
        ))
    };
    assert_eq!(
        summary(&check(&ext(r"^(7\d\d)$"), "701-799")),
        [run("vip", "701-799")]
    );
    assert_eq!(
        summary(&check(&ext(r"^7\d\d$"), "701-799")),
        [run("vip", "750-759")]
    );

    // A <regex> on another field cannot be decided: the condition is tried both ways.
    let dp = context(&format!(
        r#"<extension name="night">
  <condition regex="all">
    <regex field="caller_id_number" expression="^1\d\d\d$"/>
    <regex field="destination_number" expression="^(7\d\d)$"/>
    <action application="transfer" data="operator XML default"/>
  </condition>
</extension>
{CALLPARK}"#
    ));
    let r = check(&dp, "701-799");
    assert_eq!(
        summary(&r),
        [(
            "night".to_string(),
            Certainty::MayCatch,
            vec![("701".to_string(), "799".to_string())]
        )]
    );
    assert!(
        r.findings[0]
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("caller_id_number"),
        "{:?}",
        r.findings[0].reason
    );
}

#[test]
fn nested_conditions_are_evaluated_as_freeswitch_does() {
    // The nested condition runs only for numbers the outer one let through; when it fails the
    // extension fails (750-799 go on to callpark).
    let nested = |attrs: &str| {
        context(&format!(
            r#"<extension name="local">
  <condition field="destination_number" expression="^7\d\d$"{attrs}>
    <condition field="destination_number" expression="^(7[0-4]\d)$">
      <action application="bridge" data="user/$1"/>
    </condition>
  </condition>
</extension>
{CALLPARK}"#
        ))
    };
    let dp = nested("");
    assert_eq!(dp.contexts[0].extensions[0].conditions.len(), 1);
    assert_eq!(dp.contexts[0].extensions[0].conditions[0].nested.len(), 1);
    assert_eq!(summary(&check(&dp, "701-799")), [run("local", "701-749")]);
    // require-nested="false": whatever the nested conditions return, the extension went
    // through, so 750-799 stop here too (nothing queued for them: "No Route").
    assert_eq!(
        summary(&check(&nested(r#" require-nested="false""#), "701-799")),
        [run("local", "701-799")]
    );

    // break="never" on the outer one: a failed nested level does not end the extension; the
    // next condition decides (750-759 are voicemail's).
    let dp = context(&format!(
        r#"<extension name="voicemail">
  <condition field="destination_number" expression="^7\d\d$" break="never">
    <condition field="destination_number" expression="^(7[0-4]\d)$">
      <action application="set" data="vm_box=$1" inline="true"/>
    </condition>
  </condition>
  <condition field="destination_number" expression="^(75\d)$">
    <action application="voicemail" data="default ${{domain_name}} $1"/>
  </condition>
</extension>
{CALLPARK}"#
    ));
    assert_eq!(
        summary(&check(&dp, "701-799")),
        [run("voicemail", "750-759")]
    );

    // A nested condition is not reached when the outer one is false: its queued transfer
    // only follows 701-709.
    let dp = context(&format!(
        r#"<extension name="forward" continue="true">
  <condition field="destination_number" expression="^70\d$">
    <condition field="${{forward_all}}" expression="^true$">
      <action application="transfer" data="${{forward_to}} XML default"/>
    </condition>
  </condition>
</extension>
{CALLPARK}"#
    ));
    assert_eq!(
        summary(&check(&dp, "701-799")),
        [(
            "forward".to_string(),
            Certainty::MayCatch,
            vec![("701".to_string(), "709".to_string())]
        )]
    );
}

#[test]
fn inline_sets_carry_over_the_hunt_queued_ones_do_not() {
    // A `continue="true"` extension up front sets a flag for every call; a later extension
    // tests it. Inline, the set runs during the hunt: the flag is known when after-hours is
    // tried. Queued, it only runs once the call is taken: the lint cannot know the flag then.
    let dp = |set: &str, value: &str| {
        context(&format!(
            r#"<extension name="global" continue="true">
  <condition field="${{call_debug}}" expression="^true$" break="never">
    <action application="info" data=""/>
  </condition>
  <condition>
    <action application="set" data="night_mode={value}"{set}/>
    <action application="export" data="RFC2822_DATE=${{strftime(%a, %d %b %Y %T %z)}}"/>
  </condition>
</extension>
<extension name="after-hours">
  <condition field="${{night_mode}}" expression="^true$"/>
  <condition field="destination_number" expression="^(7\d\d)$">
    <action application="transfer" data="operator XML default"/>
  </condition>
</extension>
{CALLPARK}"#
        ))
    };
    assert_eq!(
        summary(&check(&dp(r#" inline="true""#, "true"), "701-799")),
        [run("after-hours", "701-799")]
    );
    assert!(
        check(&dp(r#" inline="true""#, "false"), "701-799")
            .findings
            .is_empty()
    );
    let may = (
        "after-hours".to_string(),
        Certainty::MayCatch,
        vec![("701".to_string(), "799".to_string())],
    );
    assert_eq!(
        summary(&check(&dp("", "true"), "701-799")),
        std::slice::from_ref(&may)
    );

    // Set inline for only some calls (here 701-749), or behind a condition that may stop the
    // extension: unknown for the extensions after it.
    let dp = context(&format!(
        r#"<extension name="tag" continue="true">
  <condition field="destination_number" expression="^7[0-4]\d$">
    <action application="set" data="night_mode=true" inline="true"/>
  </condition>
</extension>
<extension name="after-hours">
  <condition field="${{night_mode}}" expression="^true$"/>
  <condition field="destination_number" expression="^(7\d\d)$">
    <action application="transfer" data="operator XML default"/>
  </condition>
</extension>
{CALLPARK}"#
    ));
    assert_eq!(summary(&check(&dp, "701-799")), [may]);
}

#[test]
fn action_text_is_its_data() {
    // mod_dialplan_xml takes an action's text, when it has some, over its `data`: callpark's
    // transfer written as text is recognised as callpark's.
    let dp = context(
        r#"<extension name="orbits">
  <condition field="destination_number" expression="^(7\d\d)$">
    <action application="transfer" data="$1 XML default">$1 XML callpark</action>
  </condition>
</extension>
<extension name="catch-all">
  <condition field="destination_number" expression="^(\d+)$">
    <action application="bridge" data="sofia/gateway/pstn/$1"/>
  </condition>
</extension>"#,
    );
    let a = &dp.contexts[0].extensions[0].conditions[0].actions[0];
    assert_eq!(a.data, "$1 XML callpark");
    assert!(check(&dp, "701-799").findings.is_empty());
}

/// mod_dialplan_xml hunts the first <context> whose name matches, ignoring case
/// (switch_xml_find_child compares with strcasecmp): a later one of the same name is never
/// used, so what it would catch is no finding, and the lint says it is dead.
#[test]
fn only_the_first_context_of_a_name_is_hunted() {
    let xml = r#"<include>
<context name="Default">
CALLPARK
  <extension name="tone">
    <condition field="destination_number" expression="^9196$">
      <action application="answer"/>
    </condition>
  </extension>
</context>
<context name="default">
  <extension name="catch_all">
    <condition field="destination_number" expression="^(.*)$">
      <action application="bridge" data="sofia/gateway/out/$1"/>
    </condition>
  </extension>
</context>
</include>
"#
    .replace("CALLPARK", CALLPARK);
    let dp = freeswitch::parse_str(&xml, "t.xml").unwrap();
    let r = check(&dp, "701-799");
    assert!(r.findings.is_empty(), "{:?}", summary(&r));
    assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
    assert!(
        r.notes[0].contains("t.xml:14") && r.notes[0].contains("never used"),
        "{}",
        r.notes[0]
    );
}
