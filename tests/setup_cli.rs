//! `callpark setup` end to end, with no PBX running: nothing is applied without a terminal or
//! --yes (exit 1), bad input exits 2, --yes writes (backups beside), and a second run finds
//! nothing to change. The reload and the doctor then meet no PBX, which is what their
//! messages and exit codes are checked for.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// A port nothing listens on (bound, then let go).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The example configuration with its secrets in the file and its PBXes at ports nothing
/// listens on; the event socket's port.
fn config(dir: &Path) -> (PathBuf, u16) {
    let esl = free_port();
    let text = fs::read_to_string(repo("contrib/callpark.example.toml"))
        .unwrap()
        .replace(
            "password_env = \"CALLPARK_ARI_PASSWORD\"",
            "password = \"ari-secret\"",
        )
        .replace(
            "password_env = \"CALLPARK_ESL_PASSWORD\"",
            "password = \"esl-secret\"",
        )
        .replace(
            "http://127.0.0.1:8088",
            &format!("http://127.0.0.1:{}", free_port()),
        )
        .replace(
            "address = \"127.0.0.1:8021\"",
            &format!("address = \"127.0.0.1:{esl}\""),
        );
    let f = dir.join("callpark.toml");
    fs::write(&f, text).unwrap();
    (f, esl)
}

fn setup(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_callpark"))
        .arg("--config")
        .arg(config)
        .arg("setup")
        .args(args)
        .env_remove("CALLPARK_CONFIG")
        .env_remove("CALLPARK_ARI_PASSWORD")
        .env_remove("CALLPARK_ESL_PASSWORD")
        .env_remove("CALLPARK_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A copy of the stock-shaped Asterisk files.
fn asterisk_etc(dir: &Path) -> PathBuf {
    let etc = dir.join("asterisk");
    fs::create_dir(&etc).unwrap();
    for e in fs::read_dir(repo("tests/data/asterisk/stock")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), etc.join(e.file_name())).unwrap();
    }
    etc
}

#[test]
fn without_a_terminal_or_yes_nothing_is_applied() {
    let d = tempfile::tempdir().unwrap();
    let (cfg, _) = config(d.path());
    let etc = asterisk_etc(d.path());
    let before = fs::read_to_string(etc.join("ari.conf")).unwrap();
    let o = setup(&cfg, &["asterisk", "--etc", etc.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("re-run with --yes"),
        "{}",
        text(&o.stderr)
    );
    // The diff was shown, its secret masked.
    let out = text(&o.stdout);
    assert!(
        out.contains("+enabled = yes") && out.contains("+password = ********"),
        "{out}"
    );
    assert!(!out.contains("ari-secret"), "{out}");
    assert_eq!(fs::read_to_string(etc.join("ari.conf")).unwrap(), before);
    assert!(!etc.join("callpark.conf").exists());
}

#[test]
fn bad_input_exits_2() {
    let d = tempfile::tempdir().unwrap();
    let (cfg, _) = config(d.path());
    let etc = asterisk_etc(d.path());
    let o = setup(
        &cfg,
        &[
            "asterisk",
            "--etc",
            etc.to_str().unwrap(),
            "--context",
            "nosuch",
            "--yes",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("no context [nosuch]"),
        "{}",
        text(&o.stderr)
    );
    let o = setup(&cfg, &["freeswitch", "--pool", "nosuch"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("--pool nosuch"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn asterisk_with_yes_writes_reloads_and_a_second_run_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let (cfg, _) = config(d.path());
    let etc = asterisk_etc(d.path());
    let args = [
        "asterisk",
        "--etc",
        etc.to_str().unwrap(),
        "--yes",
        "--reload-command",
        "echo reloaded-by-test",
    ];
    let o = setup(&cfg, &args);
    let out = text(&o.stdout);
    // The doctor decides 0 or 1 (no Asterisk answers here); never bad input.
    assert_ne!(o.status.code(), Some(2), "{out}{}", text(&o.stderr));
    assert!(out.contains("reloaded-by-test"), "{out}");
    assert!(out.contains("pbx-a (Asterisk at"), "{out}");
    assert!(etc.join("callpark.conf").exists());
    assert!(etc.join("extensions.conf.callpark-bak").exists());
    assert!(
        fs::read_to_string(etc.join("ari.conf"))
            .unwrap()
            .contains("password = ari-secret")
    );
    let o = setup(&cfg, &args);
    let out = text(&o.stdout);
    assert!(out.contains("nothing to change"), "{out}");
    assert!(!out.contains("reloaded-by-test"), "{out}");
}

#[test]
fn freeswitch_with_yes_writes_and_says_when_no_event_socket_answers() {
    let d = tempfile::tempdir().unwrap();
    let (cfg, esl) = config(d.path());
    let conf = d.path().join("freeswitch");
    for f in [
        "dialplan/default.xml",
        "dialplan/public.xml",
        "autoload_configs/event_socket.conf.xml",
    ] {
        fs::create_dir_all(conf.join(f).parent().unwrap()).unwrap();
        fs::copy(repo("tests/data/freeswitch/vanilla").join(f), conf.join(f)).unwrap();
    }
    // The socket "listens" where nothing does, so that no FreeSWITCH on this machine (a
    // testbed on the vanilla port) is sent the reload.
    let es = conf.join("autoload_configs/event_socket.conf.xml");
    let t = fs::read_to_string(&es)
        .unwrap()
        .replace("\"8021\"", &format!("\"{esl}\""));
    fs::write(&es, t).unwrap();
    let args = ["freeswitch", "--conf", conf.to_str().unwrap(), "--yes"];
    let o = setup(&cfg, &args);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot reach FreeSWITCH's event socket"),
        "{err}"
    );
    assert!(text(&o.stdout).contains("FAIL"), "{}", text(&o.stdout));
    assert!(conf.join("dialplan/callpark/callpark.xml").exists());
    let o = setup(&cfg, &args);
    assert!(
        text(&o.stdout).contains("nothing to change"),
        "{}",
        text(&o.stdout)
    );
}
