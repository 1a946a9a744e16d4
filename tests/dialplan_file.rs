//! The shipped `dialplan/asterisk/callpark.conf` and `dialplan/freeswitch/callpark.xml` are
//! exactly what `callpark dialplan asterisk|freeswitch` prints for the example configuration,
//! so the files and the generators cannot drift apart.

use std::process::Command;

#[test]
fn shipped_asterisk_include_is_the_generator_output_for_the_example_config() {
    let repo = env!("CARGO_MANIFEST_DIR");
    let generated = generate("asterisk");
    let shipped =
        std::fs::read_to_string(format!("{repo}/dialplan/asterisk/callpark.conf")).unwrap();
    assert_eq!(
        shipped, generated,
        "regenerate: callpark --config contrib/callpark.example.toml dialplan asterisk > dialplan/asterisk/callpark.conf"
    );
    for line in [
        "exten => park,1,GotoIf($[\"${BLINDTRANSFER}\" = \"\"]?direct)",
        " same => n,StartMusicOnHold()",
        " same => n,Stasis(callpark,park,,,moh)",
        " same => n(direct),Stasis(callpark,park)",
        "exten => park-reception,1,GotoIf($[\"${BLINDTRANSFER}\" = \"\"]?direct)",
        " same => n,Stasis(callpark,park,reception,,moh)",
        "exten => _70[1-9],1,GotoIf($[\"${BLINDTRANSFER}${ATTENDEDTRANSFER}\" = \"\"]?retrieve)",
        " same => n,Stasis(callpark,park,,${EXTEN},moh)",
        " same => n(attended),Stasis(callpark,park,,${EXTEN})",
        " same => n(retrieve),Stasis(callpark,retrieve,${EXTEN})",
        "exten => _7[1-9]X,1,GotoIf($[\"${BLINDTRANSFER}${ATTENDEDTRANSFER}\" = \"\"]?retrieve)",
        "exten => _*70XX,1,GotoIf($[\"${BLINDTRANSFER}${ATTENDEDTRANSFER}\" = \"\"]?retrieve)",
        // Pattern hints, the orbits' own patterns: Asterisk makes each subscribed orbit's hint.
        "exten => _70[1-9],hint,Stasis:callpark-${EXTEN}",
        "exten => _7[1-9]X,hint,Stasis:callpark-${EXTEN}",
        "exten => _*70XX,hint,Stasis:callpark-${EXTEN}",
    ] {
        assert!(generated.contains(line), "missing: {line}");
    }
}

#[test]
fn orbits_of_other_pools_are_routed_through_their_reach_dial_string() {
    let cfg = callpark::config::Config::from_toml(
        r#"
[[pbx]]
name = "hq"
kind = "asterisk"
address = "http://127.0.0.1:8088"
username = "callpark"
password = "x"
[[pbx]]
name = "branch"
kind = "asterisk"
address = "http://10.1.1.1:8088"
username = "callpark"
password = "x"
reach = "PJSIP/{orbit}@branch-trunk"
[[orbit_range]]
name = "hq"
first = "*700"
last = "*749"
pool = "hq"
[[orbit_range]]
name = "branch"
first = "*750"
last = "*799"
pool = "branch"
"#,
        "two-pools.toml",
    )
    .unwrap();
    let hq = callpark::pbx::asterisk::dialplan::generate(&cfg, "hq");
    assert!(
        hq.contains(
            "exten => _*7[0-4]X,1,GotoIf($[\"${BLINDTRANSFER}${ATTENDEDTRANSFER}\" = \"\"]?retrieve)"
        ),
        "{hq}"
    );
    assert!(
        hq.contains("exten => _*7[5-9]X,1,Dial(PJSIP/${EXTEN}@branch-trunk)"),
        "{hq}"
    );
    assert!(
        hq.contains("exten => _*7[0-4]X,hint,Stasis:callpark-${EXTEN}"),
        "{hq}"
    );
    assert!(
        !hq.contains("exten => _*7[5-9]X,hint"),
        "no lamps for orbits of other pools"
    );
    assert_eq!(
        hq.matches(",hint,").count(),
        1,
        "one hint line per pattern, not per orbit"
    );
    let branch = callpark::pbx::asterisk::dialplan::generate(&cfg, "branch");
    assert!(branch.contains(
        "exten => _*7[5-9]X,1,GotoIf($[\"${BLINDTRANSFER}${ATTENDEDTRANSFER}\" = \"\"]?retrieve)"
    ));
    assert!(
        branch.contains("(pool hq sets no `reach` dial string"),
        "{branch}"
    );
}

#[test]
fn any_range_size_gets_lamps_and_a_single_orbit_its_own_hint() {
    let cfg = callpark::config::Config::from_toml(
        r#"
[[pbx]]
name = "hq"
kind = "asterisk"
address = "http://127.0.0.1:8088"
username = "callpark"
password = "x"
[[orbit_range]]
name = "big"
first = "1000000"
last = "1999999"
pool = "hq"
[[orbit_range]]
name = "one"
first = "700"
last = "700"
pool = "hq"
"#,
        "big.toml",
    )
    .unwrap();
    let hq = callpark::pbx::asterisk::dialplan::generate(&cfg, "hq");
    // A million orbits: one pattern hint (the old one line per orbit stopped at 10,000).
    assert!(
        hq.contains("exten => _1XXXXXX,hint,Stasis:callpark-${EXTEN}"),
        "{hq}"
    );
    // A single orbit is a literal extension: its hint names its device.
    assert!(hq.contains("exten => 700,hint,Stasis:callpark-700"), "{hq}");
    assert_eq!(hq.matches(",hint,").count(), 2, "{hq}");
}

fn generate(kind: &str) -> String {
    let repo = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(env!("CARGO_BIN_EXE_callpark"))
        .args(["--config", &format!("{repo}/contrib/callpark.example.toml")])
        .args(["dialplan", kind])
        .env("CALLPARK_ARI_PASSWORD", "unused")
        .env("CALLPARK_ESL_PASSWORD", "unused")
        .output()
        .expect("run callpark");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn shipped_freeswitch_include_is_the_generator_output_for_the_example_config() {
    let repo = env!("CARGO_MANIFEST_DIR");
    let generated = generate("freeswitch");
    let shipped =
        std::fs::read_to_string(format!("{repo}/dialplan/freeswitch/callpark.xml")).unwrap();
    assert_eq!(
        shipped, generated,
        "regenerate: callpark --config contrib/callpark.example.toml dialplan freeswitch > dialplan/freeswitch/callpark.xml"
    );
    // Well-formed XML, with the park code, this pool's orbits and the other pool's routes.
    let mut reader = quick_xml::Reader::from_str(&generated);
    let mut conditions = Vec::new();
    let mut actions = Vec::new();
    loop {
        match reader.read_event().expect("well-formed XML") {
            quick_xml::events::Event::Eof => break,
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                let attr = |k: &[u8]| {
                    e.attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == k)
                        .map(|a| a.unescape_value().unwrap().into_owned())
                };
                match e.name().as_ref() {
                    b"condition" => conditions.push(attr(b"expression").unwrap()),
                    b"action" => actions.push(format!(
                        "{} {}",
                        attr(b"application").unwrap(),
                        attr(b"data").unwrap_or_default()
                    )),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    for c in [
        "^park$",
        r"^(60[1-9]|6[1-9]\d)$",
        r"^(70[1-9]|7[1-9]\d)$",
        r"^(\*70\d{2})$",
    ] {
        assert!(
            conditions.iter().any(|x| x == c),
            "missing {c}: {conditions:?}"
        );
    }
    for a in [
        "set callpark_action=park",
        "set callpark_action=retrieve",
        "set callpark_orbit=$1",
        "sched_transfer +3 callpark-down-park XML ${context}",
        "bridge {sip_h_X-Callpark-Trunk=freeswitch,absolute_codec_string=PCMU\\,PCMA}sofia/internal/$1@127.0.0.1:5160",
        "transfer 0 XML from-internal",
    ] {
        assert!(actions.iter().any(|x| x == a), "missing {a}: {actions:?}");
    }
}

#[test]
fn reach_per_kind_of_dialling_pbx() {
    let asterisk = generate("asterisk");
    assert!(
        asterisk.contains("exten => _60[1-9],1,Dial(PJSIP/${EXTEN}@freeswitch)"),
        "Asterisk dials FreeSWITCH's orbits with its own dial string: {asterisk}"
    );
    let freeswitch = generate("freeswitch");
    assert!(
        !freeswitch.contains("PJSIP/"),
        "FreeSWITCH never gets an Asterisk dial string"
    );
}
