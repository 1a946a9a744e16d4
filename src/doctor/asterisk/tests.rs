//! The checks on the testbed's Asterisk configuration (tests/data/asterisk/doctor/, laid out
//! as /etc/asterisk is, with the include the example configuration generates now) and on ARI
//! and AMI replies written as Asterisk 22 sends them, changed one fault at a time.

use std::path::Path;

use tempfile::TempDir;

use super::ami::{self, AmiError};
use super::*;
use crate::doctor::{Ami, Status};
use crate::pbx::asterisk::dialplan::generate;
use crate::pbx::stamp;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/asterisk/doctor");

/// `GET /ari/asterisk/info`, trimmed to what the doctor reads and a little around it.
const INFO: &str = r#"{"build":{"os":"Linux","kernel":"6.1.0","machine":"x86_64","options":"","date":"2025-01-01 00:00:00 UTC","user":"root"},"system":{"version":"22.5.2","entity_id":"02:42:ac:11:00:02"},"config":{"name":"","default_language":"en","setid":{"user":"","group":""}},"status":{"startup_time":"2025-01-01T00:00:00.000+0000","last_reload_time":"2025-01-01T00:00:00.000+0000"}}"#;

/// `GET /ari/applications` while `callpark run` is connected.
const APPS: &str = r#"[{"name":"callpark","channel_ids":[],"bridge_ids":[],"endpoint_ids":[],"device_names":[],"events_allowed":[],"events_disallowed":[]}]"#;

fn cfg() -> Config {
    let text = include_str!("../../../contrib/callpark.example.toml");
    Config::from_toml(text, "callpark.example.toml").unwrap()
}

fn pbx(cfg: &Config) -> PbxConfig {
    cfg.pbx.iter().find(|p| p.name == "pbx-a").unwrap().clone()
}

/// A copy of the test directory holding the include the example configuration generates.
fn etc_dir() -> TempDir {
    let d = TempDir::new().unwrap();
    for e in std::fs::read_dir(DATA).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, d.path().join(p.file_name().unwrap())).unwrap();
    }
    std::fs::write(d.path().join("callpark.conf"), generate(&cfg(), "pbx-a")).unwrap();
    d
}

fn edit(d: &TempDir, name: &str, f: impl FnOnce(String) -> String) {
    let p = d.path().join(name);
    let t = std::fs::read_to_string(&p).unwrap();
    let changed = f(t.clone());
    assert_ne!(t, changed, "the edit of {name} changed nothing");
    std::fs::write(p, changed).unwrap();
}

/// What a working Asterisk answers, with the files of `d`.
fn facts(d: &Path) -> Facts {
    Facts {
        info: Answer::Ok(INFO.into()),
        write: Some(Answer::Status(404, "Channel not found".into())),
        apps: Some(Answer::Ok(APPS.into())),
        etc: files::read(d),
        ami: None,
    }
}

fn opts(d: &Path) -> Options {
    Options {
        asterisk_etc: d.to_path_buf(),
        ..Options::default()
    }
}

fn run(d: &Path, f: &Facts) -> Vec<Check> {
    let c = cfg();
    checks(&c, &pbx(&c), &opts(d), f)
}

fn topic<'a>(cs: &'a [Check], t: &str) -> Vec<&'a Check> {
    cs.iter().filter(|c| c.topic == t).collect()
}

fn one<'a>(cs: &'a [Check], t: &str) -> &'a Check {
    let v = topic(cs, t);
    assert_eq!(v.len(), 1, "{t}: {cs:#?}");
    v[0]
}

/// An AMI Command response as Asterisk 14 and later frame it.
fn output(lines: &str) -> String {
    lines.lines().map(|l| format!("Output: {l}\r\n")).collect()
}

fn live_ami(stamp: &str) -> AmiFacts {
    let park = "[ Included context 'callpark' created by 'pbx_config' ]\n  'park' =>         1. GotoIf($[\"${BLINDTRANSFER}\" = \"\"]?direct)  [callpark.conf:6]\n                    2. StartMusicOnHold()                         [callpark.conf:7]\n                    3. Stasis(callpark,park,,,moh)                [callpark.conf:8]\n   [direct]         6. Stasis(callpark,park)                      [callpark.conf:11]\n\n-= 1 extension (8 priorities) in 1 context. =-";
    let reception = park.replace("'park'", "'park-reception'");
    AmiFacts {
        connect: None,
        stamp: Some(Ok(format!(
            "[ Context 'callpark-down' created by 'pbx_config' ]\n  'callpark-stamp' => 1. NoOp(callpark-stamp {stamp})   [callpark.conf:93]\n\n-= 1 extension (1 priority) in 1 context. =-"
        ))),
        park_codes: vec![
            ("park-in".into(), "park".into(), Ok(park.into())),
            ("park-in".into(), "park-reception".into(), Ok(reception)),
        ],
        moh: Some(Ok("Class: default\n\tMode: files\n\tDirectory: moh\nClass: callpark-custom\n\tMode: files\n\tDirectory: /var/lib/asterisk/moh-callpark-custom".into())),
    }
}

fn with_ami(d: &Path) -> Options {
    Options {
        ami: Some(Ami {
            address: "127.0.0.1:5039".into(),
            username: "callpark".into(),
            secret: "callpark-testbed-ami".into(),
        }),
        ..opts(d)
    }
}

#[test]
fn the_testbed_configuration_works_end_to_end() {
    let d = etc_dir();
    let c = cfg();
    let want = stamp::find(&generate(&c, "pbx-a")).unwrap();
    let mut f = facts(d.path());
    f.ami = Some(live_ami(&want));
    let cs = checks(&c, &pbx(&c), &with_ami(d.path()), &f);
    assert!(cs.iter().all(|c| c.status == Status::Ok), "{cs:#?}");
    assert!(one(&cs, "connection").said.contains("Asterisk 22.5.2"));
    assert!(one(&cs, "include").said.contains(&want));
    // The context is found in pjsip.conf: alice's. The endpoint freeswitch is a trunk (an
    // identify section names it), neither a phone context nor a phone for caller id.
    assert!(
        one(&cs, "context")
            .said
            .contains("park-in (endpoints alice),"),
        "{cs:#?}"
    );
    assert!(one(&cs, "caller id").said.contains("endpoints alice send"));
    assert_eq!(topic(&cs, "park code").len(), 2, "park and park-reception");
    assert_eq!(topic(&cs, "live").len(), 2);
    assert_eq!(topic(&cs, "music").len(), 2, "general and lot reception");
    let order: Vec<&str> = cs.iter().map(|c| c.topic).collect();
    assert_eq!(
        &order[..6],
        [
            "connection",
            "write",
            "application",
            "include",
            "ami",
            "loaded"
        ]
    );
}

#[test]
fn without_ami_what_asterisk_loaded_is_skipped_and_says_how() {
    let d = etc_dir();
    let cs = run(d.path(), &facts(d.path()));
    let l = one(&cs, "loaded");
    assert_eq!(l.status, Status::Skip);
    assert!(l.said.contains("--ami HOST:PORT"), "{l:?}");
    assert!(topic(&cs, "live").is_empty());
    assert!(cs.iter().all(|c| c.status != Status::Fail), "{cs:#?}");
}

#[test]
fn a_missing_include_says_how_to_write_and_include_it() {
    let d = etc_dir();
    edit(&d, "extensions.conf", |t| {
        t.replace("#include callpark.conf", "")
    });
    std::fs::remove_file(d.path().join("callpark.conf")).unwrap();
    let cs = run(d.path(), &facts(d.path()));
    let inc = one(&cs, "include");
    assert_eq!(inc.status, Status::Fail);
    assert!(inc.said.contains("holds callpark's include"), "{inc:?}");
    let to = d.path().join("callpark.conf");
    assert_eq!(
        inc.fix,
        [
            format!(
                "callpark --config /etc/callpark/callpark.toml dialplan asterisk --pool pbx-a > {}",
                to.display()
            ),
            "#include callpark.conf   (in extensions.conf)".into(),
            "asterisk -rx \"dialplan reload\"".into(),
        ]
    );
    // Without [callpark] the phones' context cannot reach it either.
    let ctx = one(&cs, "context");
    assert_eq!(ctx.status, Status::Fail);
    assert!(ctx.said.contains("defines [callpark]"), "{ctx:?}");
}

#[test]
fn an_included_file_emptied_of_callpark_is_regenerated_in_place() {
    let d = etc_dir();
    std::fs::write(d.path().join("callpark.conf"), "; emptied\n").unwrap();
    let cs = run(d.path(), &facts(d.path()));
    let inc = one(&cs, "include");
    assert_eq!(inc.status, Status::Fail);
    assert!(inc.said.contains("holds no callpark include"), "{inc:?}");
    assert_eq!(inc.fix.len(), 2, "no #include line: it is there: {inc:?}");
    assert!(inc.fix[0].ends_with("/callpark.conf"), "{inc:?}");
    // [park-in] has its include => callpark: the fix is the file's, not another line.
    let ctx = one(&cs, "context");
    assert_eq!(ctx.status, Status::Fail);
    assert!(ctx.fix.is_empty(), "{ctx:?}");
}

#[test]
fn an_include_not_included_by_extensions_conf_needs_only_the_include_line() {
    let d = etc_dir();
    edit(&d, "extensions.conf", |t| {
        t.replace("#include callpark.conf", "")
    });
    let cs = run(d.path(), &facts(d.path()));
    let inc = one(&cs, "include");
    assert_eq!(inc.status, Status::Fail);
    assert!(inc.said.contains("does not #include it"), "{inc:?}");
    assert_eq!(inc.fix[0], "#include callpark.conf   (in extensions.conf)");
}

#[test]
fn an_include_with_another_stamp_is_stale() {
    let d = etc_dir();
    let want = stamp::find(&generate(&cfg(), "pbx-a")).unwrap();
    edit(&d, "callpark.conf", |t| {
        t.replace(&want, "0123456789abcdef")
    });
    let cs = run(d.path(), &facts(d.path()));
    let inc = one(&cs, "include");
    assert_eq!(inc.status, Status::Fail);
    assert!(
        inc.said.contains("stale") && inc.said.contains("stamp 0123456789abcdef"),
        "{inc:?}"
    );
    assert!(
        inc.fix[0].contains("dialplan asterisk --pool pbx-a > "),
        "{inc:?}"
    );
    assert!(inc.fix[0].ends_with("callpark.conf"), "{inc:?}");
    assert_eq!(inc.fix[1], "asterisk -rx \"dialplan reload\"");
}

#[test]
fn an_include_edited_by_hand_is_regenerated() {
    let d = etc_dir();
    edit(&d, "callpark.conf", |t| {
        t.replacen("Playback(pbx-parkingfailed)", "Playback(beep)", 1)
    });
    let cs = run(d.path(), &facts(d.path()));
    let inc = one(&cs, "include");
    assert_eq!(inc.status, Status::Fail);
    assert!(inc.said.contains("edited by hand"), "{inc:?}");
    assert!(inc.fix[0].contains("dialplan asterisk --pool pbx-a"));
}

#[test]
fn a_phone_context_without_include_callpark_fails() {
    let d = etc_dir();
    edit(&d, "extensions.conf", |t| {
        t.replace("[park-in]\ninclude => callpark\n", "[park-in]\n")
    });
    let cs = run(d.path(), &facts(d.path()));
    let ctx = one(&cs, "context");
    assert_eq!(ctx.status, Status::Fail);
    assert!(ctx.said.contains("does not include [callpark]"), "{ctx:?}");
    assert_eq!(
        ctx.fix[0],
        "include => callpark   (in [park-in] of extensions.conf)"
    );
    // The include file itself is fine.
    assert_eq!(one(&cs, "include").status, Status::Ok);
}

#[test]
fn an_extension_that_takes_orbits_before_callpark_is_named_by_the_lint() {
    let d = etc_dir();
    edit(&d, "extensions.conf", |t| {
        t.replace(
            "[park-in]\ninclude => callpark\n",
            "[park-in]\nexten => _6XX,1,Dial(PJSIP/${EXTEN}@trunk)\ninclude => callpark\n",
        )
    });
    let cs = run(d.path(), &facts(d.path()));
    let lint = topic(&cs, "lint");
    assert!(
        lint.iter().any(|c| c.status == Status::Fail
            && c.said.contains("_6XX@park-in")
            && c.said.contains("601-699")
            && c.said.contains("extensions.conf:")),
        "{lint:#?}"
    );
    // The lint's fix, one line to paste each.
    assert!(
        lint.iter()
            .all(|c| !c.fix.is_empty() && c.fix.iter().all(|l| !l.contains('\n'))),
        "{lint:#?}"
    );
}

#[test]
fn a_park_code_taken_by_the_context_itself_says_what_to_remove() {
    let d = etc_dir();
    edit(&d, "extensions.conf", |t| {
        t.replace(
            "[park-in]\ninclude => callpark\n",
            "[park-in]\ninclude => callpark\nexten => park,1,Dial(PJSIP/operator)\n",
        )
    });
    let cs = run(d.path(), &facts(d.path()));
    let p = topic(&cs, "park code");
    assert_eq!(p[0].status, Status::Fail, "{p:#?}");
    assert!(p[0].said.contains("runs park@park-in"), "{p:#?}");
    assert!(p[0].fix[0].starts_with("remove or rename `exten => park` of [park-in]"));
    assert_eq!(
        p[1].status,
        Status::Ok,
        "park-reception still reaches callpark"
    );
}

#[test]
fn a_wrong_password_stops_there_and_names_the_ari_user() {
    let d = etc_dir();
    let f = Facts {
        info: Answer::Status(401, "Authentication required".into()),
        ..facts(d.path())
    };
    let cs = run(d.path(), &f);
    assert_eq!(cs.len(), 1, "{cs:#?}");
    assert_eq!(cs[0].status, Status::Fail);
    assert!(cs[0].said.contains("(401)") && cs[0].said.contains("has a [callpark] user"));
    assert_eq!(cs[0].fix[0], "[callpark]   (in ari.conf)");
    assert!(cs[0].fix.iter().any(|l| l == "read_only = no"));
    assert!(
        cs[0]
            .fix
            .iter()
            .any(|l| l.contains("$CALLPARK_ARI_PASSWORD"))
    );
}

#[test]
fn nothing_listening_names_http_conf_and_the_address_port() {
    let d = etc_dir();
    let f = Facts {
        info: Answer::Unreachable("connection refused".into()),
        ..facts(d.path())
    };
    let cs = run(d.path(), &f);
    assert_eq!(cs.len(), 1);
    // The testbed's http.conf binds 8188, the example configuration dials 8088.
    assert!(cs[0].said.contains("bindport = 8188"), "{cs:?}");
    assert!(
        cs[0].fix.iter().any(|l| l.starts_with("bindport = 8088")),
        "{cs:?}"
    );
}

#[test]
fn a_read_only_user_fails_with_read_only_no() {
    let d = etc_dir();
    let f = Facts {
        write: Some(Answer::Status(403, "Write access denied".into())),
        ..facts(d.path())
    };
    let cs = run(d.path(), &f);
    let w = one(&cs, "write");
    assert_eq!(w.status, Status::Fail);
    assert_eq!(w.fix[0], "read_only = no   (in [callpark] of ari.conf)");
}

#[test]
fn callpark_not_running_is_a_warning() {
    let d = etc_dir();
    let f = Facts {
        apps: Some(Answer::Ok("[]".into())),
        ..facts(d.path())
    };
    let cs = run(d.path(), &f);
    let a = one(&cs, "application");
    assert_eq!(a.status, Status::Warn);
    assert_eq!(a.fix[0], "systemctl start callpark");
}

#[test]
fn no_channelvars_is_a_warning_with_the_line() {
    let d = etc_dir();
    edit(&d, "ari.conf", |t| {
        t.replace(
            "channelvars = BLINDTRANSFER,ATTENDEDTRANSFER,FORWARDERNAME",
            "",
        )
    });
    let cs = run(d.path(), &facts(d.path()));
    let c = one(&cs, "channelvars");
    assert_eq!(c.status, Status::Warn);
    assert_eq!(
        c.fix[0],
        "channelvars = BLINDTRANSFER,ATTENDEDTRANSFER,FORWARDERNAME   (in [general] of ari.conf)"
    );
}

#[test]
fn a_missing_music_class_means_silence() {
    let d = etc_dir();
    edit(&d, "musiconhold.conf", |t| t.replace("[default]", "[jazz]"));
    let cs = run(d.path(), &facts(d.path()));
    let m = topic(&cs, "music");
    assert_eq!(m.len(), 2);
    for c in m {
        assert_eq!(c.status, Status::Warn, "{c:?}");
        assert!(
            c.said.contains("class default") && c.said.contains("silence"),
            "{c:?}"
        );
        assert_eq!(c.fix[0].split_whitespace().next(), Some("[default]"));
    }
}

#[test]
fn endpoints_inherit_context_and_caller_id_from_templates() {
    let d = etc_dir();
    edit(&d, "pjsip.conf", |t| {
        t.replace(
            "[alice]\ntype = endpoint\n",
            "[phone](!)\ncontext = office\nsend_pai = yes\n\n[alice](phone)\ntype = endpoint\n",
        )
        .replace(
            "context = park-in\ndisallow = all\nallow = ulaw\naors = alice\n",
            "disallow = all\nallow = ulaw\naors = alice\n",
        )
        .replace("send_pai = yes\n\n; The FreeSWITCH", "\n; The FreeSWITCH")
    });
    let f = facts(d.path());
    let phones = phone_contexts(&Options::default(), &f.etc);
    // freeswitch is a trunk: no phone context of its own.
    assert_eq!(phones, [("office".to_string(), vec!["alice".to_string()])]);
    let cs = run(d.path(), &f);
    assert_eq!(one(&cs, "caller id").status, Status::Ok, "{cs:#?}");
    // extensions.conf has no [office].
    let ctx = one(&cs, "context");
    assert_eq!(ctx.status, Status::Fail);
    assert!(ctx.said.contains("office (endpoints alice)"), "{ctx:?}");
}

#[test]
fn a_phone_without_connected_line_updates_keeps_showing_the_orbit() {
    let d = etc_dir();
    edit(&d, "pjsip.conf", |t| {
        t.replace("send_pai = yes\n\n; The FreeSWITCH", "\n; The FreeSWITCH")
    });
    let cs = run(d.path(), &facts(d.path()));
    let c = one(&cs, "caller id");
    assert_eq!(c.status, Status::Warn);
    assert!(
        c.said.contains("alice") && !c.said.contains("freeswitch"),
        "{c:?}"
    );
    assert_eq!(c.fix[0], "send_pai = yes   (in [alice] of pjsip.conf)");
}

#[test]
fn no_configuration_directory_skips_the_files() {
    let nowhere = Path::new("/nonexistent/callpark-doctor/etc");
    let cs = run(nowhere, &facts(nowhere));
    assert_eq!(one(&cs, "files").status, Status::Skip);
    assert!(one(&cs, "files").said.contains("--asterisk-etc DIR"));
    assert!(topic(&cs, "include").is_empty());
    assert_eq!(one(&cs, "context").status, Status::Skip);
    assert!(cs.iter().all(|c| c.status != Status::Fail), "{cs:#?}");
}

#[test]
fn what_asterisk_loaded_is_checked_over_ami() {
    let d = etc_dir();
    let c = cfg();
    let mut f = facts(d.path());
    f.ami = Some(live_ami("0123456789abcdef"));
    let cs = checks(&c, &pbx(&c), &with_ami(d.path()), &f);
    let l = one(&cs, "loaded");
    assert_eq!(l.status, Status::Fail);
    assert!(l.said.contains("stale") && l.said.contains("0123456789abcdef"));
    // The files are current: a reload is all it takes.
    assert_eq!(l.fix, ["asterisk -rx \"dialplan reload\""]);

    let mut a = live_ami("");
    a.stamp = Some(Ok("There is no existence of 'callpark-down' context".into()));
    a.park_codes[0].2 = Ok("There is no existence of park@park-in extension".into());
    f.ami = Some(a);
    let cs = checks(&c, &pbx(&c), &with_ami(d.path()), &f);
    assert!(one(&cs, "loaded").said.contains("no callpark include"));
    assert_eq!(topic(&cs, "live")[0].status, Status::Fail);

    f.ami = Some(AmiFacts {
        connect: Some(AmiError::Refused("Authentication failed".into())),
        stamp: None,
        park_codes: Vec::new(),
        moh: None,
    });
    let cs = checks(&c, &pbx(&c), &with_ami(d.path()), &f);
    let a = one(&cs, "ami");
    assert_eq!(a.status, Status::Warn);
    assert!(a.fix.iter().any(|l| l == "write = command"));
    assert!(topic(&cs, "loaded").is_empty() && topic(&cs, "live").is_empty());
}

#[test]
fn ami_command_responses_in_both_formats() {
    let new = format!(
        "Response: Success\r\nActionID: callpark-doctor-2\r\nMessage: Command output follows\r\n{}\r\nEvent: FullyBooted\r\n",
        output("Class: default\n\tMode: files\n\nClass: callpark-custom")
    );
    let (m, used) = ami::next_message(&new).unwrap();
    assert_eq!(m.get("ActionID"), Some("callpark-doctor-2"));
    assert_eq!(
        ami::moh_classes(&m.output_text()),
        ["default", "callpark-custom"]
    );
    assert!(new[used..].starts_with("Event: FullyBooted"));
    // Incomplete: wait for more.
    assert!(ami::next_message(&new[..new.len() - 30]).is_none());

    let old = "Response: Follows\r\nPrivilege: Command\r\nActionID: x\r\nClass: default\r\n\r\nClass: jazz\r\n--END COMMAND--\r\n\r\nResponse: Success\r\n\r\n";
    let (m, used) = ami::next_message(old).unwrap();
    assert_eq!(m.get("ActionID"), Some("x"));
    assert_eq!(m.get("Class"), None, "output lines are not headers");
    assert_eq!(ami::moh_classes(&m.output_text()), ["default", "jazz"]);
    assert_eq!(&old[used..], "Response: Success\r\n\r\n");

    let mid = "Response: Follows\r\nMessage: Command output follows\r\nOutput: Class: default\r\nClass: jazz--END COMMAND--\r\n\r\n";
    let (m, _) = ami::next_message(mid).unwrap();
    assert_eq!(ami::moh_classes(&m.output_text()), ["default", "jazz"]);
}

#[test]
fn the_first_extension_dialplan_show_lists_is_the_one_asterisk_runs() {
    let out = "[ Context 'park-in' created by 'pbx_config' ]\n  'park' =>         1. Dial(PJSIP/operator)    [extensions.conf:20]\n\n[ Included context 'callpark' created by 'pbx_config' ]\n  'park' =>         1. Stasis(callpark,park)   [callpark.conf:6]\n";
    let x = ami::first_extension(out).unwrap();
    assert_eq!(x.context, "park-in");
    assert_eq!(x.steps, ["1. Dial(PJSIP/operator)"]);
    assert_eq!(x.at.as_deref(), Some("extensions.conf:20"));
    let ok = live_ami("x").park_codes[0].2.clone().unwrap();
    let x = ami::first_extension(&ok).unwrap();
    assert_eq!(x.context, "callpark");
    assert_eq!(x.steps.len(), 4);
    assert_eq!(x.steps[3], "6. Stasis(callpark,park)");
    assert!(
        ami::first_extension("There is no existence of 'park' extension in all contexts").is_none()
    );
}

#[test]
fn extension_names_match_as_asterisk_matches_them() {
    use super::contexts::exten_matches as m;
    assert!(m("park", "park"));
    assert!(m("park-reception", "parkreception"));
    assert!(!m("park", "parking"));
    assert!(m("_7XX", "701") && !m("_7XX", "7010"));
    assert!(m("_*70XX", "*7000"));
    assert!(m("_[a-z].", "park") && !m("_X.", "park"));
    assert!(m("_p!", "p") && !m("_p.", "p"));
    assert!(m("_70[1-9]", "709") && !m("_70[1-9]", "700"));
    assert!(m("_NXX", "200") && !m("_NXX", "100") && m("_zxx", "100"));
    assert!(m("_7-0X", "701") && m("_[7-8]0X", "801"));
}
