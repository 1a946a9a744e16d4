//! The Asterisk extension orderings the lint assumes (tests/data/lint/asterisk_order/
//! expected.txt, which `tests/lint_asterisk.rs` holds the lint to) are what the real Asterisk 22
//! of the testbed runs: `confirm.sh` loads the snippets and asks `dialplan show` for each case.

use callpark_testkit as support;

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

/// Every Asterisk fix the lint proposes for Debian's own sample dial plans loads next to the
/// real file on the real Asterisk 22 without a clash ("already in use" would cost the original
/// extension its priority), and after it the orbits it protects go to callpark first.
#[tokio::test]
async fn every_proposed_asterisk_fix_loads_next_to_the_real_file_and_routes_to_callpark() {
    let _turn = support::exclusive().await;
    support::testbed().await;
    let root = std::path::PathBuf::from(support::tb("ROOT"));
    let etc = root.join("etc/asterisk");
    let main = etc.join("extensions.conf");
    let text = std::fs::read_to_string(&main).unwrap();
    if !text.contains("#include lintchk.conf") {
        std::fs::write(&main, format!("{text}\n#include lintchk.conf\n")).unwrap();
    }
    let samples = format!("{}/tests/data/lint/asterisk-samples", support::REPO);
    let ranges = [
        "1100-1199",
        "1200-1299",
        "5500-5599",
        "7000-7099",
        "8800-8899",
    ];
    let mut checked = 0;
    for file in ["basic-pbx-extensions.conf", "extensions.conf.sample"] {
        let path = format!("{samples}/{file}");
        let original = std::fs::read_to_string(&path).unwrap();
        let (renamed, contexts) = isolate(&original);
        let mut fixes = std::collections::BTreeSet::new();
        for ctx in &contexts {
            for range in ranges {
                for f in lint_json(&path, ctx, range) {
                    if f["kind"] == "catches" {
                        if let Some(fix) = f["fix"].as_str().and_then(parse_fix) {
                            fixes.insert((
                                ctx.clone(),
                                f["caught"][0]["first"].as_str().unwrap().to_string(),
                                fix,
                            ));
                        }
                    }
                }
            }
        }
        assert!(
            !fixes.is_empty(),
            "{file}: the lint proposed no fix to check"
        );
        for (scope, orbit, (ctx, lines)) in fixes {
            let conf = format!("{renamed}\n[lintchk-{ctx}](+)\n{}\n", lines.join("\n"));
            std::fs::write(etc.join("lintchk.conf"), conf).unwrap();
            let mark = support::asterisk_log().len();
            cli("dialplan reload");
            let log = support::asterisk_log();
            let new = &log[mark.min(log.len())..];
            assert!(
                !new.contains("already in use") && !new.contains("Unable to register extension"),
                "{file}: the fix for [{ctx}] clashes with the file:\n{}\n{new}",
                lines.join("\n")
            );
            let show = cli(&format!("dialplan show {orbit}@lintchk-{scope}"));
            let first = show
                .lines()
                .find(|l| l.contains("' =>"))
                .unwrap_or_else(|| panic!("{orbit}@{scope}: nothing matches:\n{show}"));
            assert!(
                first.contains("Goto(callpark,"),
                "{file}: after the fix for [{ctx}] ({}), {orbit} dialled in [{scope}] still runs first:\n{show}",
                lines.join(" / ")
            );
            checked += 1;
        }
    }
    std::fs::write(etc.join("lintchk.conf"), "").unwrap();
    cli("dialplan reload");
    assert!(checked >= 5, "only {checked} fixes checked");
}

/// The sample with every context renamed `lintchk-<name>` (and its includes), without its
/// [general] and [globals] settings: it loads beside the testbed's own dial plan without
/// touching it. Returns the text and the original context names.
fn isolate(text: &str) -> (String, Vec<String>) {
    let mut contexts = Vec::new();
    let mut out = String::new();
    let mut skip = false;
    for line in text.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            skip = matches!(name, "general" | "globals");
            if !skip {
                contexts.push(name.to_string());
                out.push_str(&line.replacen(&format!("[{name}]"), &format!("[lintchk-{name}]"), 1));
                out.push('\n');
            }
            continue;
        }
        if skip {
            continue;
        }
        // `include => name` or `include = name`: both spellings are Asterisk's.
        match t.strip_prefix("include").map(str::trim_start) {
            Some(rest) if rest.starts_with('=') => {
                let target = rest.trim_start_matches('=').trim_start_matches('>').trim();
                out.push_str(&format!("include => lintchk-{target}\n"));
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    (out, contexts)
}

/// The lint's findings as JSON for one file, context and orbit range.
fn lint_json(path: &str, context: &str, orbits: &str) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_callpark"))
        .args([
            "lint",
            "--orbits",
            orbits,
            "--asterisk",
            path,
            "--context",
            context,
        ])
        .args(["--format", "json"])
        .output()
        .expect("run callpark lint");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("lint {path} {context} {orbits}: {e}: {out:?}"));
    v["findings"].as_array().cloned().unwrap_or_default()
}

/// `in [ctx] add ...:\nexten => ...` -> (ctx, the exten lines).
fn parse_fix(fix: &str) -> Option<(String, Vec<String>)> {
    let ctx = fix.strip_prefix("in [")?.split(']').next()?.to_string();
    let lines: Vec<String> = fix
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("exten =>"))
        .map(str::to_string)
        .collect();
    (!lines.is_empty()).then_some((ctx, lines))
}

fn cli(command: &str) -> String {
    let script = format!("{}/contrib/testbed/asterisk/testbed.sh", support::REPO);
    let out = Command::new("bash")
        .arg(&script)
        .args(["cli", command])
        .output()
        .expect("run testbed.sh cli");
    assert!(out.status.success(), "{command}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
