//! `callpark setup freeswitch` on FreeSWITCH's vanilla configuration
//! (tests/data/freeswitch/vanilla/, copied from the 1.11.3 bundle's conf/vanilla untouched)
//! and on bad input.

use std::fs;
use std::path::{Path, PathBuf};

use super::freeswitch::{INCLUDE, Options, Socket, plan};
use super::{apply, fsxml};
use crate::config::Config;

const EXAMPLE: &str = include_str!("../../contrib/callpark.example.toml");
const VANILLA: &str = "tests/data/freeswitch/vanilla";

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// The example configuration with the event socket at `address` and its secret in the file.
fn cfg(address: &str) -> Config {
    let text = EXAMPLE
        .replace(
            "password_env = \"CALLPARK_ESL_PASSWORD\"",
            "password = \"esl-secret\"",
        )
        .replace(
            "address = \"127.0.0.1:8021\"",
            &format!("address = \"{address}\""),
        );
    Config::from_toml(&text, "callpark.example.toml").unwrap()
}

/// A copy of the vanilla files to change.
fn vanilla() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for f in [
        "freeswitch.xml",
        "dialplan/default.xml",
        "dialplan/public.xml",
        "autoload_configs/event_socket.conf.xml",
    ] {
        let to = d.path().join(f);
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(repo(VANILLA).join(f), to).unwrap();
    }
    d
}

fn opts(conf: &Path, context: &str) -> Options {
    Options {
        pool: None,
        conf: conf.to_path_buf(),
        context: context.into(),
    }
}

fn changed(conf: &Path, p: &super::Plan) -> Vec<String> {
    p.changes
        .iter()
        .map(|c| c.path.strip_prefix(conf).unwrap().display().to_string())
        .collect()
}

fn new_text(p: &super::Plan, path: &Path) -> String {
    p.changes
        .iter()
        .find(|c| c.path == path)
        .unwrap_or_else(|| panic!("no change to {}", path.display()))
        .new
        .clone()
}

#[test]
fn vanilla_gets_the_include_first_in_default_and_the_socket_set() {
    let d = vanilla();
    let conf = d.path();
    let c = cfg("127.0.0.1:8022");
    let fp = plan(&c, &opts(conf, "default")).unwrap();
    assert_eq!(
        changed(conf, &fp.plan),
        [
            INCLUDE,
            "dialplan/default.xml",
            "autoload_configs/event_socket.conf.xml"
        ]
    );
    assert_eq!(
        new_text(&fp.plan, &conf.join(INCLUDE)),
        crate::pbx::freeswitch::dialplan::generate(&c, "pbx-b")
    );
    let dp = new_text(&fp.plan, &conf.join("dialplan/default.xml"));
    assert!(
        dp.contains(
            "<include>\n  <context name=\"default\">\n    <X-PRE-PROCESS cmd=\"include\" data=\"callpark/callpark.xml\"/>\n\n    <extension name=\"unloop\">"
        ),
        "{dp}"
    );
    let es = new_text(
        &fp.plan,
        &conf.join("autoload_configs/event_socket.conf.xml"),
    );
    let old = fs::read_to_string(conf.join("autoload_configs/event_socket.conf.xml")).unwrap();
    // Three values changed in place, nothing else: `::` covers 127.0.0.1 and stays.
    assert_eq!(
        es,
        old.replace("\"8021\"", "\"8022\"")
            .replace("\"ClueCon\"", "\"esl-secret\"")
    );
    assert_eq!(fsxml::param(&es, "listen-ip").as_deref(), Some("::"));
    assert!(fp.event_socket_changed);
    // The reload goes to the socket as it listens now, with the password it has now.
    assert_eq!(
        fp.before,
        Socket {
            address: "127.0.0.1:8021".into(),
            password: "ClueCon".into()
        }
    );
    assert_eq!(fp.after.address, "127.0.0.1:8022");
    assert_eq!(fp.plan.contexts, ["default"]);
    let diff: String = fp.plan.changes.iter().map(|c| c.diff()).collect();
    assert!(
        !diff.contains("esl-secret") && !diff.contains("ClueCon"),
        "{diff}"
    );

    apply(&fp.plan.changes, &conf.join("freeswitch.xml")).unwrap();
    let again = plan(&c, &opts(conf, "default")).unwrap();
    assert!(again.plan.changes.is_empty(), "{:#?}", again.plan.changes);
    assert!(!again.event_socket_changed);
    assert_eq!(again.before.password, "esl-secret");
    assert!(
        again
            .plan
            .notes
            .iter()
            .any(|n| n.contains("includes callpark/callpark.xml already")),
        "{:?}",
        again.plan.notes
    );
}

#[test]
fn the_include_is_where_no_vanilla_glob_loads_it_again() {
    // freeswitch.xml loads dialplan/*.xml at the level of the section, default.xml loads
    // default/*.xml at the end of its context: the include is in neither directory.
    let main = fs::read_to_string(repo(VANILLA).join("freeswitch.xml")).unwrap();
    assert!(main.contains("data=\"dialplan/*.xml\""));
    let dp = fs::read_to_string(repo(VANILLA).join("dialplan/default.xml")).unwrap();
    assert!(dp.contains("data=\"default/*.xml\""));
    let dir = Path::new(INCLUDE).parent().unwrap();
    assert_eq!(dir, Path::new("dialplan/callpark"));
}

#[test]
fn another_context_another_file_and_a_listen_ip_that_does_not_cover() {
    let d = vanilla();
    let conf = d.path();
    let es = conf.join("autoload_configs/event_socket.conf.xml");
    let text = fs::read_to_string(&es)
        .unwrap()
        .replace("\"::\"", "\"192.0.2.1\"");
    fs::write(&es, &text).unwrap();
    let fp = plan(&cfg("127.0.0.1:8021"), &opts(conf, "public")).unwrap();
    let public = new_text(&fp.plan, &conf.join("dialplan/public.xml"));
    assert!(
        public.contains(
            "<context name=\"public\">\n    <X-PRE-PROCESS cmd=\"include\" data=\"callpark/callpark.xml\"/>\n"
        ),
        "{public}"
    );
    assert!(!changed(conf, &fp.plan).contains(&"dialplan/default.xml".to_string()));
    let new = new_text(&fp.plan, &es);
    assert_eq!(
        fsxml::param(&new, "listen-ip").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(fsxml::param(&new, "listen-port").as_deref(), Some("8021"));
    // The socket listens on 192.0.2.1 until its reload.
    assert_eq!(fp.before.address, "192.0.2.1:8021");
}

#[test]
fn an_earlier_callpark_include_is_pointed_out() {
    let d = vanilla();
    let conf = d.path();
    let f = conf.join("dialplan/default.xml");
    let text = fs::read_to_string(&f).unwrap().replacen(
        "<context name=\"default\">",
        "<context name=\"default\">\n    <X-PRE-PROCESS cmd=\"include\" data=\"default/00_callpark.xml\"/>",
        1,
    );
    fs::write(&f, text).unwrap();
    let fp = plan(&cfg("127.0.0.1:8021"), &opts(conf, "default")).unwrap();
    assert!(
        fp.plan
            .notes
            .iter()
            .any(|n| n.contains("also includes default/00_callpark.xml")),
        "{:?}",
        fp.plan.notes
    );
}

#[test]
fn bad_input_is_an_error_naming_the_file() {
    let d = vanilla();
    let conf = d.path();
    let c = cfg("127.0.0.1:8021");
    let e = plan(&c, &opts(conf, "phones")).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "{}: no file defines <context name=\"phones\">",
            conf.join("dialplan/*.xml").display()
        )),
        "{e}"
    );
    let text = EXAMPLE.replace("CALLPARK_ESL_PASSWORD", "CALLPARK_SETUP_TEST_NEVER_SET");
    let unset = Config::from_toml(&text, "callpark.toml").unwrap();
    let e = plan(&unset, &opts(conf, "default"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`CALLPARK_SETUP_TEST_NEVER_SET` (password_env) is not set"),
        "{e}"
    );
    let e = plan(&cfg("8021"), &opts(conf, "default"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("HOST:PORT"), "{e}");
    fs::remove_file(conf.join("autoload_configs/event_socket.conf.xml")).unwrap();
    let e = plan(&c, &opts(conf, "default")).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "{}: not found",
            conf.join("autoload_configs/event_socket.conf.xml")
                .display()
        )),
        "{e}"
    );
    fs::write(
        conf.join("dialplan/default.xml"),
        b"<context name=\"default\">\xff",
    )
    .unwrap();
    let e = plan(&c, &opts(conf, "default")).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "{}: cannot read it",
            conf.join("dialplan/default.xml").display()
        )),
        "{e}"
    );
    // An Asterisk pool named for FreeSWITCH.
    let e = plan(
        &c,
        &Options {
            pool: Some("pbx-a".into()),
            ..opts(conf, "default")
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("pbx-a has kind = \"asterisk\""), "{e}");
}

#[test]
fn a_socket_written_with_variables_is_kept_when_they_stand_for_the_right_values() {
    // The FreeSWITCH testbed's file: port and password are preprocessor variables, set in
    // a vars.xml that freeswitch.xml includes.
    let d = vanilla();
    let conf = d.path();
    let es = conf.join("autoload_configs/event_socket.conf.xml");
    fs::copy(
        repo("contrib/testbed/freeswitch/conf/autoload_configs/event_socket.conf.xml"),
        &es,
    )
    .unwrap();
    fs::write(
        conf.join("vars.xml"),
        "<include>\n  <X-PRE-PROCESS cmd=\"set\" data=\"esl_port=8121\"/>\n  <X-PRE-PROCESS cmd=\"set\" data=\"esl_password=esl-secret\"/>\n</include>\n",
    )
    .unwrap();
    let fp = plan(&cfg("127.0.0.1:8121"), &opts(conf, "default")).unwrap();
    assert!(!fp.event_socket_changed, "{:#?}", fp.plan.changes);
    assert_eq!(
        fp.before,
        Socket {
            address: "127.0.0.1:8121".into(),
            password: "esl-secret".into()
        }
    );
    // Another port: the variable gives way to the number; the password's stays.
    let fp = plan(&cfg("127.0.0.1:8122"), &opts(conf, "default")).unwrap();
    let new = new_text(&fp.plan, &es);
    assert!(
        new.contains("<param name=\"listen-port\" value=\"8122\"/>"),
        "{new}"
    );
    assert!(new.contains("value=\"$${esl_password}\""), "{new}");
    assert_eq!(fp.before.address, "127.0.0.1:8121");
    // Without vars.xml nothing is known: the values are written out, and the reload tries
    // the socket where callpark expects it.
    fs::remove_file(conf.join("vars.xml")).unwrap();
    let fp = plan(&cfg("127.0.0.1:8121"), &opts(conf, "default")).unwrap();
    let new = new_text(&fp.plan, &es);
    assert!(
        new.contains("value=\"8121\"") && new.contains("value=\"esl-secret\""),
        "{new}"
    );
    assert_eq!(fp.before.address, "127.0.0.1:8121");
    assert_eq!(fp.before.password, "");
}

#[test]
fn preprocessor_variables_expand_as_they_are_set() {
    let v = super::freeswitch::preprocessor_vars(&[
        "<X-PRE-PROCESS cmd=\"set\" data=\"a=1\"/>\n<X-PRE-PROCESS cmd=\"set\" data=\"b=$${a}2\"/>",
        "<X-PRE-PROCESS cmd=\"set\" data=\"a=3\"/>\n<X-PRE-PROCESS cmd=\"set\" data=\"c=$${local_ip_v4}\"/>",
    ]);
    assert_eq!(v["a"], "3");
    assert_eq!(v["b"], "12");
    assert_eq!(v["c"], "$${local_ip_v4}");
}
