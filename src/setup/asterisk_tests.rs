//! `callpark setup asterisk` on stock-shaped files (tests/data/asterisk/stock/), on the
//! testbed's own files (contrib/testbed/asterisk/etc/, set up already), and on bad input.

use std::fs;
use std::path::{Path, PathBuf};

use super::asterisk::{Options, edit_ari, edit_http, listen, plan};
use super::ini::Conf;
use super::{Plan, apply};
use crate::config::Config;

const EXAMPLE: &str = include_str!("../../contrib/callpark.example.toml");

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// The example configuration with the ARI secret in the file (tests set no environment).
fn cfg() -> Config {
    let text = EXAMPLE.replace(
        "password_env = \"CALLPARK_ARI_PASSWORD\"",
        "password = \"ari-secret\"",
    );
    Config::from_toml(&text, "callpark.example.toml").unwrap()
}

/// A copy of `from` (a directory of the repository) to change.
fn copy(from: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for e in fs::read_dir(repo(from)).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), d.path().join(e.file_name())).unwrap();
    }
    d
}

fn opts(etc: &Path, contexts: &[&str]) -> Options {
    Options {
        pool: None,
        etc: etc.to_path_buf(),
        contexts: contexts.iter().map(|c| c.to_string()).collect(),
    }
}

/// The new text of `name` in the plan.
fn new_text(p: &Plan, etc: &Path, name: &str) -> String {
    p.changes
        .iter()
        .find(|c| c.path == etc.join(name))
        .unwrap_or_else(|| panic!("no change to {name}: {p:#?}"))
        .new
        .clone()
}

fn changed(p: &Plan) -> Vec<String> {
    p.changes
        .iter()
        .map(|c| c.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn stock_files_get_every_edit_and_a_second_run_changes_nothing() {
    let d = copy("tests/data/asterisk/stock");
    let etc = d.path();
    let c = cfg();
    let p = plan(&c, &opts(etc, &[])).unwrap();
    assert_eq!(
        changed(&p),
        ["callpark.conf", "extensions.conf", "http.conf", "ari.conf"]
    );
    assert_eq!(
        new_text(&p, etc, "callpark.conf"),
        crate::pbx::asterisk::dialplan::generate(&c, "pbx-a")
    );
    // pjsip.conf's endpoints are all commented out: the contexts that exist of the two.
    assert_eq!(p.contexts, ["from-internal", "default"]);

    let ext = new_text(&p, etc, "extensions.conf");
    assert!(
        ext.contains("[from-internal]\ninclude => callpark\n; The context"),
        "{ext}"
    );
    assert!(
        ext.contains("[default]\ninclude => callpark\n;\n; By default"),
        "{ext}"
    );
    assert!(ext.contains("[demo]\nexten => 1000"), "{ext}");
    assert!(ext.ends_with("\n#include callpark.conf\n"), "{ext}");
    assert_eq!(ext.matches("include => callpark").count(), 2);

    let http = new_text(&p, etc, "http.conf");
    assert!(
        http.contains(";\nenabled = yes\n;\n; Address to bind"),
        "{http}"
    );
    assert!(http.contains("\nbindaddr=127.0.0.1\n"), "{http}");
    assert!(http.contains("\nbindport = 8088\n"), "{http}");
    assert!(http.contains("\n;prefix=asterisk\n"), "{http}");
    assert!(
        !http.contains(";enabled=yes") && !http.contains(";bindport"),
        "{http}"
    );
    no_key_twice(&http);

    let ari = new_text(&p, etc, "ari.conf");
    assert!(
        ari.starts_with("[general]\nenabled = yes       ; When set to no"),
        "{ari}"
    );
    assert!(
        ari.contains("\nchannelvars = BLINDTRANSFER,ATTENDEDTRANSFER,FORWARDERNAME\n;  "),
        "{ari}"
    );
    assert!(
        ari.ends_with(
            "crypted with crypt(3).\n\n[callpark]\ntype = user\nread_only = no\npassword = ari-secret\n"
        ),
        "{ari}"
    );
    // The commented-out user example stays as it was.
    assert!(ari.contains(";[username]\n;type = user"), "{ari}");
    no_key_twice(&ari);
    // The diff never shows the secret.
    let diff = p.changes.iter().map(|c| c.diff()).collect::<String>();
    assert!(!diff.contains("ari-secret"), "{diff}");
    assert!(diff.contains("+password = ********"), "{diff}");

    apply(&p.changes, &etc.join("extensions.conf")).unwrap();
    let again = plan(&c, &opts(etc, &[])).unwrap();
    assert!(again.changes.is_empty(), "{:#?}", again.changes);
    assert!(etc.join("ari.conf.callpark-bak").exists());
    assert!(!etc.join("callpark.conf.callpark-bak").exists());
}

/// No section of `text` sets a key twice.
fn no_key_twice(text: &str) {
    let c = Conf::parse(text);
    for s in c.sections() {
        let mut keys: Vec<String> = c.keys(&s).map(|(_, k, _)| k.to_lowercase()).collect();
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), n, "[{}] sets a key twice:\n{text}", s.name);
    }
}

#[test]
fn existing_channelvars_are_merged_and_a_user_is_corrected_in_place() {
    let t = "[general]\nenabled=no\nchannelvars = CALLERID(num), BLINDTRANSFER\n\n[callpark]\ntype=user\nread_only=yes ; for now\npassword=$1$hash\npassword_format=crypt\n";
    assert_eq!(
        edit_ari(t, "callpark", "s;x"),
        "[general]\nenabled=yes\nchannelvars = CALLERID(num),BLINDTRANSFER,ATTENDEDTRANSFER,FORWARDERNAME\n\n[callpark]\ntype=user\nread_only=no ; for now\npassword=s\\;x\npassword_format=plain\n"
    );
    // All three listed already (in another order): left as written.
    let t = "[general]\nenabled = true\nchannelvars = FORWARDERNAME,BLINDTRANSFER,ATTENDEDTRANSFER\n[callpark]\ntype = user\nread_only = false\npassword = x\n";
    assert_eq!(edit_ari(t, "callpark", "x"), t);
    // No file at all.
    assert_eq!(
        edit_ari("", "cp", "x"),
        "[general]\nenabled = yes\nchannelvars = BLINDTRANSFER,ATTENDEDTRANSFER,FORWARDERNAME\n\n[cp]\ntype = user\nread_only = no\npassword = x\n"
    );
}

#[test]
fn http_keeps_a_wildcard_bind_and_follows_the_port_and_prefix() {
    let l = |addr: &str| {
        let text = EXAMPLE.replace("http://127.0.0.1:8088", addr);
        let c = Config::from_toml(&text, "x.toml").unwrap();
        listen(&c, &c.pbx[0])
    };
    let t = "[general]\nenabled=no\nbindaddr=0.0.0.0\nbindport=8088\nprefix=asterisk\n";
    assert_eq!(
        edit_http(t, &l("http://127.0.0.1:8188").unwrap()),
        "[general]\nenabled=yes\nbindaddr=0.0.0.0\nbindport=8188\nprefix=\n"
    );
    assert_eq!(
        edit_http(
            "[general]\nbindaddr=192.0.2.1\n",
            &l("http://localhost:8088/ari-base").unwrap()
        ),
        "[general]\nbindaddr=127.0.0.1\nenabled = yes\nbindport = 8088\nprefix = ari-base\n"
    );
    let e = l("https://127.0.0.1:8089").unwrap_err().to_string();
    assert!(
        e.contains("address `https://127.0.0.1:8089`") && e.contains("tlsenable"),
        "{e}"
    );
    let e = l("http://pbx.example.com:8088").unwrap_err().to_string();
    assert!(e.contains("IP address"), "{e}");
}

const PHONES_PJSIP: &str = "\
[phone](!)
type = endpoint
context = phones
allow = ulaw

[alice](phone)
aors = alice

[bob](phone)
context = sales

[carol]
type = endpoint

[itsp]
type = endpoint
context = from-external

[itsp]
type = identify
endpoint = itsp
match = 192.0.2.10
";

const PHONES_EXTENSIONS: &str = "\
[general]
static = yes

[globals]

[from-external]
exten => s,1,Dial(PJSIP/alice)

[phones]
include => callpark ; already there
exten => 100,1,Dial(PJSIP/alice)

#include extensions_custom.conf
";

#[test]
fn phone_contexts_come_from_pjsip_endpoints_and_trunks_are_left_out() {
    let d = tempfile::tempdir().unwrap();
    let etc = d.path();
    fs::write(etc.join("pjsip.conf"), PHONES_PJSIP).unwrap();
    fs::write(etc.join("extensions.conf"), PHONES_EXTENSIONS).unwrap();
    // The sales and default contexts, and the include, live in an included file.
    fs::write(
        etc.join("extensions_custom.conf"),
        "[sales]\nexten => 200,1,Dial(PJSIP/bob)\n[default]\n#include \"callpark.conf\"\n",
    )
    .unwrap();
    let p = plan(&cfg(), &opts(etc, &[])).unwrap();
    assert_eq!(p.contexts, ["phones", "sales", "default"]);
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("endpoint itsp is a trunk")),
        "{:?}",
        p.notes
    );
    // [phones] includes callpark already, and callpark.conf is included: extensions.conf
    // does not change at all.
    assert!(
        !changed(&p).contains(&"extensions.conf".to_string()),
        "{p:#?}"
    );
    assert_eq!(
        new_text(&p, etc, "extensions_custom.conf"),
        "[sales]\ninclude => callpark\nexten => 200,1,Dial(PJSIP/bob)\n[default]\ninclude => callpark\n#include \"callpark.conf\"\n"
    );
}

#[test]
fn a_context_that_does_not_exist_is_an_error_naming_it() {
    let d = tempfile::tempdir().unwrap();
    let etc = d.path();
    fs::write(etc.join("pjsip.conf"), PHONES_PJSIP).unwrap();
    fs::write(etc.join("extensions.conf"), PHONES_EXTENSIONS).unwrap();
    // extensions_custom.conf is missing: [sales] is nowhere. The error names the endpoint's
    // line in pjsip.conf.
    let e = plan(&cfg(), &opts(etc, &[])).unwrap_err().to_string();
    let at = format!(
        "{}:10: endpoint bob dials from context sales",
        etc.join("pjsip.conf").display()
    );
    assert!(e.starts_with(&at), "{e}");
    assert!(e.contains("--context"), "{e}");
    let e = plan(&cfg(), &opts(etc, &["phones", "nosuch"]))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "{}: --context nosuch: no context [nosuch]",
            etc.join("extensions.conf").display()
        )),
        "{e}"
    );
    // A context inside a block comment does not exist either.
    fs::write(
        etc.join("extensions.conf"),
        "[general]\n;--\n[hidden]\n--;\n",
    )
    .unwrap();
    let e = plan(&cfg(), &opts(etc, &["hidden"]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no context [hidden]"), "{e}");
    // No extensions.conf at all.
    fs::remove_file(etc.join("extensions.conf")).unwrap();
    let e = plan(&cfg(), &opts(etc, &["phones"]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("extensions.conf: not found"), "{e}");
}

#[test]
fn a_missing_secret_is_an_error_naming_password_env_and_its_line() {
    let d = tempfile::tempdir().unwrap();
    let text = EXAMPLE.replace("CALLPARK_ARI_PASSWORD", "CALLPARK_SETUP_TEST_NEVER_SET");
    let file = d.path().join("callpark.toml");
    fs::write(&file, &text).unwrap();
    let mut c = Config::from_toml(&text, "callpark.toml").unwrap();
    c.file = Some(file.clone());
    let line = text
        .lines()
        .position(|l| l.contains("CALLPARK_SETUP_TEST_NEVER_SET"))
        .unwrap()
        + 1;
    let e = plan(&c, &opts(d.path(), &[])).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}:{line}: ", file.display())),
        "{e}"
    );
    assert!(
        e.contains("`CALLPARK_SETUP_TEST_NEVER_SET` (password_env) is not set"),
        "{e}"
    );
}

#[test]
fn an_unreadable_file_is_an_error_naming_it() {
    let d = copy("tests/data/asterisk/stock");
    let etc = d.path();
    fs::remove_file(etc.join("ari.conf")).unwrap();
    fs::create_dir(etc.join("ari.conf")).unwrap();
    let e = plan(&cfg(), &opts(etc, &[])).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "{}: cannot read it",
            etc.join("ari.conf").display()
        )),
        "{e}"
    );
    fs::write(etc.join("http.conf"), b"[general]\n\xff\n").unwrap();
    let e = plan(&cfg(), &opts(etc, &[])).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "{}: cannot read it",
            etc.join("http.conf").display()
        )),
        "{e}"
    );
}

#[test]
fn the_testbed_is_set_up_already_but_for_its_include() {
    let d = copy("contrib/testbed/asterisk/etc");
    let etc = d.path();
    let text = fs::read_to_string(repo("contrib/testbed/callpark.toml")).unwrap();
    let c = Config::from_toml(&text, "callpark.toml").unwrap();
    // testbed.sh copies the example configuration's include next to extensions.conf; the
    // testbed's own configuration (other pools, no reach) generates another one.
    fs::copy(
        repo("dialplan/asterisk/callpark.conf"),
        etc.join("callpark.conf"),
    )
    .unwrap();
    let p = plan(&c, &opts(etc, &[])).unwrap();
    assert_eq!(changed(&p), ["callpark.conf"], "{p:#?}");
    assert_eq!(p.contexts, ["park-in"]);
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("endpoint freeswitch is a trunk")),
        "{:?}",
        p.notes
    );
    apply(&p.changes, &etc.join("extensions.conf")).unwrap();
    assert!(plan(&c, &opts(etc, &[])).unwrap().changes.is_empty());
}
