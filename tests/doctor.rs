//! `callpark doctor` on the real testbeds, each fault made on purpose: the include missing,
//! a stale include, a wrong password, an orbit caught by a rule of the phones' context; and a
//! configuration whose park would work, which must pass.

use callpark_testkit as support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::fs::generated_include;
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
    let include = generated_include(&good);

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
