//! `callpark doctor` on the real testbeds, each fault made on purpose: the include missing,
//! a stale include, a wrong password, an orbit caught by a rule of the phones' context; and a
//! configuration whose park would work, which must pass.

use callpark_testkit as support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::fs::*;
use support::*;

/// A configuration of pool pbx-b on the FreeSWITCH testbed, orbits `first`-`last`.
fn fs_config(dir: &Path, password: &str, first: &str, last: &str) -> PathBuf {
    let text = format!(
        "[service]\ndata_dir = \"{}\"\n\n[park]\n\n[[policy]]\nname = \"everyone\"\nenable_call_park = true\npatterns = [\".*\"]\n\n\
         [[pbx]]\nname = \"pbx-b\"\nkind = \"freeswitch\"\naddress = \"{}\"\npassword = \"{password}\"\noutbound = \"127.0.0.1:8041\"\n\n\
         [[orbit_range]]\nname = \"warehouse\"\nfirst = \"{first}\"\nlast = \"{last}\"\npool = \"pbx-b\"\n",
        dir.join("data").display(),
        esl_addr()
    );
    let p = dir.join("callpark.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// `callpark doctor --format json`: its exit code and the checks of its one pool.
fn doctor(config: &Path, more: &[&str]) -> (i32, Vec<Value>) {
    let out = Command::new(bin())
        .arg("--config")
        .arg(config)
        .args(["doctor", "--format", "json"])
        .args(more)
        // The manager secret, for a run given `--ami-secret-env CALLPARK_DOCTOR_TEST_AMI`.
        .env("CALLPARK_DOCTOR_TEST_AMI", tb("AMI_SECRET"))
        .output()
        .expect("run callpark doctor");
    let text = String::from_utf8_lossy(&out.stdout);
    let reports: Vec<Value> = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "doctor printed no JSON ({e}):\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(reports.len(), 1, "{text}");
    let checks = reports[0]["checks"].as_array().unwrap().clone();
    (out.status.code().unwrap_or(-1), checks)
}

/// The checks of one topic, as `status: said` lines (for the assertion messages too).
fn topic(checks: &[Value], t: &str) -> Vec<String> {
    checks
        .iter()
        .filter(|c| c["topic"] == t)
        .map(|c| {
            format!(
                "{}: {} | fix: {}",
                c["status"].as_str().unwrap(),
                c["said"].as_str().unwrap(),
                c["fix"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f.as_str().unwrap())
                    .collect::<Vec<_>>()
                    .join(" / ")
            )
        })
        .collect()
}

fn failed(checks: &[Value]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| format!("{}: {}", c["topic"], c["said"]))
        .collect()
}

#[tokio::test]
async fn freeswitch_doctor_passes_a_working_setup_and_names_each_fault() {
    let _turn = exclusive_of("freeswitch").await;
    let esl = fs_testbed().await;
    let dir = tempfile::tempdir().unwrap();
    let good = fs_config(dir.path(), &fb("ESL_PASSWORD"), "601", "699");
    let include = support::fs::generated_include(&good);

    // A park would work: the include this configuration generates, in the phones' context.
    install_include(&esl, &include).await;
    let (code, checks) = doctor(&good, &[]);
    assert_eq!(code, 0, "{checks:#?}");
    assert!(failed(&checks).is_empty(), "{:?}", failed(&checks));
    let inc = topic(&checks, "include");
    assert!(
        inc[0].starts_with("ok: loaded (context callpark-test)"),
        "{inc:?}"
    );
    // The context is found from the directory: alice's user_context.
    let ctx = topic(&checks, "context");
    assert_eq!(
        ctx,
        vec!["ok: phones dial from context callpark-test, which includes callpark's file | fix: "]
    );
    assert!(topic(&checks, "lint")[0].starts_with("ok:"), "{checks:#?}");
    assert!(
        topic(&checks, "presence")[0].starts_with("ok:"),
        "{checks:#?}"
    );

    // Stale: the orbit table changed since the include was generated.
    let dir2 = tempfile::tempdir().unwrap();
    let changed = fs_config(dir2.path(), &fb("ESL_PASSWORD"), "601", "650");
    let (code, checks) = doctor(&changed, &[]);
    assert_eq!(code, 1, "{checks:#?}");
    let inc = topic(&checks, "include");
    assert!(
        inc[0].starts_with("fail: the include loaded in context callpark-test is stale")
            && inc[0].contains("dialplan freeswitch --pool pbx-b")
            && inc[0].contains("fs_cli -x reloadxml"),
        "{inc:?}"
    );

    // A wrong password: nothing else can be checked.
    let dir3 = tempfile::tempdir().unwrap();
    let wrong = fs_config(dir3.path(), "not-the-password", "601", "699");
    let (code, checks) = doctor(&wrong, &[]);
    assert_eq!(code, 1);
    assert_eq!(checks.len(), 1, "{checks:#?}");
    let c = topic(&checks, "connection");
    assert!(c[0].contains("refused the password"), "{c:?}");

    // An orbit caught by an extension hunted before callpark's.
    let catching = include.replacen(
        "<include>",
        "<include>\n  <extension name=\"six-hundreds\">\n    <condition field=\"destination_number\" expression=\"^(6\\d\\d)$\">\n      <action application=\"bridge\" data=\"user/$1\"/>\n    </condition>\n  </extension>",
        1,
    );
    install_include(&esl, &catching).await;
    let (code, checks) = doctor(&good, &[]);
    assert_eq!(code, 1, "{checks:#?}");
    let lint = topic(&checks, "lint");
    assert!(
        lint.iter()
            .any(|l| l.starts_with("fail:") && l.contains("six-hundreds") && l.contains("601-699")),
        "{lint:?}"
    );
    assert!(
        topic(&checks, "include")[0].starts_with("ok:"),
        "{checks:#?}"
    );

    // The include missing altogether.
    install_include(&esl, "<include>\n</include>\n").await;
    let (code, checks) = doctor(&good, &[]);
    assert_eq!(code, 1);
    let inc = topic(&checks, "include");
    assert!(
        inc[0].starts_with("fail: the dial plan FreeSWITCH has loaded holds no callpark extension")
            && inc[0].contains("<X-PRE-PROCESS cmd=\"include\" data=\"callpark/callpark.xml\"/>   (the first line inside <context name=\"callpark-test\">)"),
        "{inc:?}"
    );

    // Fixed again, as the fix says: the doctor passes.
    install_include(&esl, &include).await;
    let (code, _) = doctor(&good, &[]);
    assert_eq!(code, 0);
    install_include(&esl, &shipped_include()).await;
}

/// A configuration of pool pbx-a on the Asterisk testbed, orbits `first`-`last`.
fn ast_config(dir: &Path, password: &str, first: &str, last: &str) -> PathBuf {
    let text = format!(
        "[service]\ndata_dir = \"{}\"\n\n[park]\n\n[[policy]]\nname = \"everyone\"\nenable_call_park = true\npatterns = [\".*\"]\n\n\
         [[pbx]]\nname = \"pbx-a\"\nkind = \"asterisk\"\naddress = \"{}\"\nusername = \"{}\"\npassword = \"{password}\"\napp = \"{}\"\n\n\
         [[orbit_range]]\nname = \"main\"\nfirst = \"{first}\"\nlast = \"{last}\"\npool = \"pbx-a\"\n",
        dir.join("data").display(),
        tb("ARI_URL"),
        tb("ARI_USER"),
        tb("ARI_APP")
    );
    let p = dir.join("callpark.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// The testbed Asterisk's CLI.
fn ast_cli(cmd: &str) -> String {
    let script = Path::new(REPO).join("contrib/testbed/asterisk/testbed.sh");
    let o = Command::new("bash")
        .arg(&script)
        .args(["cli", cmd])
        .output()
        .expect("testbed.sh cli");
    assert!(o.status.success(), "{cmd}: {o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A file of the testbed's configuration directory, put back as it was when dropped.
struct Restore {
    path: PathBuf,
    text: String,
    reload: Option<&'static str>,
}

impl Restore {
    fn edit(name: &str, reload: Option<&'static str>, f: impl FnOnce(&str) -> String) -> Restore {
        let path = Path::new(&tb("ROOT")).join("etc/asterisk").join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, f(&text)).unwrap();
        if let Some(r) = reload {
            ast_cli(r);
        }
        Restore { path, text, reload }
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.path, &self.text);
        if let Some(r) = self.reload {
            ast_cli(r);
        }
    }
}

#[tokio::test]
async fn asterisk_doctor_passes_a_working_setup_and_names_each_fault() {
    let _turn = exclusive_of("asterisk").await;
    testbed().await;
    let etc = Path::new(&tb("ROOT")).join("etc/asterisk");
    let ami = format!("{}:{}", tb("AMI_HOST"), tb("AMI_PORT"));
    let opts = [
        "--asterisk-etc",
        etc.to_str().unwrap(),
        "--ami",
        &ami,
        "--ami-user",
        &tb("AMI_USER"),
        "--ami-secret-env",
        "CALLPARK_DOCTOR_TEST_AMI",
    ];
    let doctor = |config: &Path| doctor(config, &opts);
    let dir = tempfile::tempdir().unwrap();
    let good = ast_config(dir.path(), &tb("ARI_PASSWORD"), "701", "799");
    let include = support::generated_include(&good, "asterisk", "pbx-a");

    // A park would work: the include this configuration generates, loaded, reached from the
    // context of the testbed's endpoints (park-in, found in pjsip.conf).
    install_asterisk_include(&include);
    let (code, checks) = doctor(&good);
    assert_eq!(code, 0, "{checks:#?}");
    assert!(failed(&checks).is_empty(), "{:?}", failed(&checks));
    for t in ["connection", "write", "include", "loaded", "channelvars"] {
        let c = topic(&checks, t);
        assert!(
            !c.is_empty() && c.iter().all(|l| l.starts_with("ok:")),
            "{t}: {c:?}"
        );
    }
    let ctx = topic(&checks, "context");
    assert!(ctx.iter().any(|l| l.contains("park-in")), "{ctx:?}");

    // Stale: the orbit table changed since the include was generated.
    let dir2 = tempfile::tempdir().unwrap();
    let changed = ast_config(dir2.path(), &tb("ARI_PASSWORD"), "701", "750");
    let (code, checks) = doctor(&changed);
    assert_eq!(code, 1, "{checks:#?}");
    let inc = topic(&checks, "include");
    assert!(
        inc.iter()
            .any(|l| l.starts_with("fail:") && l.contains("dialplan asterisk --pool pbx-a")),
        "{inc:?}"
    );
    let loaded = topic(&checks, "loaded");
    assert!(loaded.iter().any(|l| l.starts_with("fail:")), "{loaded:?}");

    // A wrong password: nothing else can be checked.
    let dir3 = tempfile::tempdir().unwrap();
    let wrong = ast_config(dir3.path(), "not-the-password", "701", "799");
    let (code, checks) = doctor(&wrong);
    assert_eq!(code, 1);
    let c = topic(&checks, "connection");
    assert!(
        c.iter()
            .any(|l| l.starts_with("fail:") && l.contains("ari.conf")),
        "{c:?}"
    );

    // No channelvars: a park still works (callpark asks over REST), the doctor says what to add.
    {
        let _ari = Restore::edit("ari.conf", None, |t| {
            t.lines()
                .filter(|l| !l.starts_with("channelvars"))
                .collect::<Vec<_>>()
                .join("\n")
        });
        let (code, checks) = doctor(&good);
        assert_eq!(code, 0, "{checks:#?}");
        let cv = topic(&checks, "channelvars");
        assert!(
            cv.iter().any(|l| l.starts_with("warn:")
                && l.contains("channelvars = BLINDTRANSFER,ATTENDEDTRANSFER,FORWARDERNAME")),
            "{cv:?}"
        );
    }

    // An orbit caught by a rule of the phones' context: its own extensions win over includes.
    {
        let _ext = Restore::edit("extensions.conf", Some("dialplan reload"), |t| {
            t.replacen("[park-in]\n", "[park-in]\nexten => _7XX,1,Hangup()\n", 1)
        });
        let (code, checks) = doctor(&good);
        assert_eq!(code, 1, "{checks:#?}");
        let lint = topic(&checks, "lint");
        assert!(
            lint.iter()
                .any(|l| l.starts_with("fail:") && l.contains("_7XX")),
            "{lint:?}"
        );
    }

    // The include missing altogether.
    install_asterisk_include("; emptied by the doctor test\n");
    let (code, checks) = doctor(&good);
    assert_eq!(code, 1);
    let inc = topic(&checks, "include");
    assert!(inc.iter().any(|l| l.starts_with("fail:")), "{inc:?}");

    // Fixed again, as the fix says: the doctor passes.
    install_asterisk_include(&include);
    let (code, _) = doctor(&good);
    assert_eq!(code, 0);
    install_asterisk_include(&shipped_asterisk_include());
}

/// The shipped Asterisk include (for contrib/callpark.example.toml), which `testbed.sh up`
/// installs.
fn shipped_asterisk_include() -> String {
    let p = Path::new(REPO).join("dialplan/asterisk/callpark.conf");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}
