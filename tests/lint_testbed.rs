//! The Asterisk extension orderings the lint assumes (tests/data/lint/asterisk_order/
//! expected.txt, which `tests/lint_asterisk.rs` holds the lint to) are what the real Asterisk 22
//! of the testbed runs: `confirm.sh` loads the snippets and asks `dialplan show` for each case.

mod support;

use std::process::Command;

#[tokio::test]
async fn expected_orderings_are_what_the_real_asterisk_runs() {
    let _turn = support::exclusive().await;
    support::testbed().await;
    let dir = format!("{}/tests/data/lint/asterisk_order", support::REPO);
    let out = Command::new("bash")
        .arg(format!("{dir}/confirm.sh"))
        .output()
        .expect("run confirm.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "Asterisk disagrees:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cases = std::fs::read_to_string(format!("{dir}/expected.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .count();
    let agreed = stdout.lines().filter(|l| l.starts_with("ok ")).count();
    assert!(cases > 20, "expected.txt holds the cases ({cases})");
    assert_eq!(agreed, cases, "every case checked on Asterisk:\n{stdout}");
}
