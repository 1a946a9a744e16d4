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
        // A call the other PBX sent over the trunk with X-Callpark-Park: a park here.
        "exten => _70[1-9],1,GotoIf($[\"${CHANNEL(channeltype)}\" != \"PJSIP\"]?local)",
        " same => n,Set(CALLPARK_TRUNK_PARK=${PJSIP_HEADER(read,X-Callpark-Park)})",
        " same => n,GotoIf($[${LEN(${CALLPARK_TRUNK_PARK})} > 0]?trunk)",
        " same => n(local),GotoIf($[\"${BLINDTRANSFER}${ATTENDEDTRANSFER}\" = \"\"]?retrieve)",
        " same => n(trunk),Answer()",
        " same => n,Stasis(callpark,park,,${EXTEN},moh,${CALLPARK_TRUNK_PARK})",
        " same => n,Stasis(callpark,park,,${EXTEN},moh)",
        " same => n(attended),Stasis(callpark,park,,${EXTEN})",
        " same => n(retrieve),Stasis(callpark,retrieve,${EXTEN})",
        "exten => _7[1-9]X,1,GotoIf($[\"${CHANNEL(channeltype)}\" != \"PJSIP\"]?local)",
        "exten => _*70XX,1,GotoIf($[\"${CHANNEL(channeltype)}\" != \"PJSIP\"]?local)",
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
            "exten => _*7[0-4]X,1,GotoIf($[\"${CHANNEL(channeltype)}\" != \"PJSIP\"]?local)"
        ),
        "{hq}"
    );
    // Dialled: a retrieve on the branch; transferred: a park there, the trunk leg marked by
    // the pre-dial handler with this pool and the transferer.
    for line in [
        "exten => _*7[5-9]X,1,GotoIf($[\"${BLINDTRANSFER}${ATTENDEDTRANSFER}\" = \"\"]?dial)",
        " same => n,Dial(PJSIP/${EXTEN}@branch-trunk,,b(callpark-trunk^park^1(hq/${IF($[\"${BLINDTRANSFER}\" = \"\"]?${ATTENDEDTRANSFER}:${BLINDTRANSFER})})))",
        " same => n(dial),Dial(PJSIP/${EXTEN}@branch-trunk)",
        "[callpark-trunk]",
        "exten => park,1,Set(PJSIP_HEADER(add,X-Callpark-Park)=${ARG1})",
    ] {
        assert!(hq.contains(line), "missing {line}: {hq}");
    }
    assert!(
        hq.contains("exten => _*7[0-4]X,hint,Stasis:callpark-${EXTEN}"),
        "{hq}"
    );
    // The branch's orbits, routed from here, light here too (callpark shows every pool's
    // lamps on every PBX).
    assert!(
        hq.contains("; busy lamps of range branch (pool branch)\nexten => _*7[5-9]X,hint,Stasis:callpark-${EXTEN}"),
        "{hq}"
    );
    assert_eq!(
        hq.matches(",hint,").count(),
        2,
        "one hint line per pattern, not per orbit"
    );
    let branch = callpark::pbx::asterisk::dialplan::generate(&cfg, "branch");
    assert!(branch.contains(
        " same => n(local),GotoIf($[\"${BLINDTRANSFER}${ATTENDEDTRANSFER}\" = \"\"]?retrieve)"
    ));
    assert!(
        !branch.contains("[callpark-trunk]"),
        "no route to another pool, no handler"
    );
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
                    b"action" | b"anti-action" => actions.push(format!(
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
    // Over the trunk with X-Callpark-Park, or transferred here: a park, not a retrieve.
    assert!(
        generated.contains(
            r#"<condition field="${sip_h_X-Callpark-Park}${transfer_source}" expression="^$">"#
        ),
        "{generated}"
    );
    for a in [
        "set callpark_action=park",
        "set callpark_action=retrieve",
        "set callpark_orbit=$1",
        "sched_transfer +3 callpark-down-park XML ${context}",
        "bridge {sip_h_X-Callpark-Trunk=freeswitch,absolute_codec_string=PCMU\\,PCMA}sofia/internal/${destination_number}@127.0.0.1:5160",
        // Transferred to Asterisk's orbit: marked a park there, naming its transferer.
        "bridge {sip_h_X-Callpark-Park=pbx-b/${bridge_channel},sip_h_X-Callpark-Trunk=freeswitch,absolute_codec_string=PCMU\\,PCMA}sofia/internal/${destination_number}@127.0.0.1:5160",
        "transfer 0 XML from-internal",
    ] {
        assert!(actions.iter().any(|x| x == a), "missing {a}: {actions:?}");
    }
}

#[test]
fn reach_per_kind_of_dialling_pbx() {
    let asterisk = generate("asterisk");
    assert!(
        asterisk.contains(" same => n(dial),Dial(PJSIP/${EXTEN}@freeswitch)"),
        "Asterisk dials FreeSWITCH's orbits with its own dial string: {asterisk}"
    );
    let freeswitch = generate("freeswitch");
    assert!(
        !freeswitch.contains("PJSIP/"),
        "FreeSWITCH never gets an Asterisk dial string"
    );
}
