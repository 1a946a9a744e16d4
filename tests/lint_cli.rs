//! `callpark lint` end to end: exit codes 0/1/2, the JSON object, argument pairing.

use std::path::PathBuf;
use std::process::{Command, Output};

const ORBITS: &str = "701-799,*7000-*7099";

fn ex(p: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("normalization")
        .join(p)
        .display()
        .to_string()
}

fn lint(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_callpark"))
        .arg("lint")
        .args(args)
        .env_remove("CALLPARK_CONFIG")
        .env_remove("CALLPARK_ARI_PASSWORD")
        .output()
        .unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

#[test]
fn clean_rules_exit_0() {
    let o = lint(&[
        "--orbits",
        ORBITS,
        "--lync",
        &ex("examples/lync/teams-dialplan.json"),
    ]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("no orbit is caught"));
}

#[test]
fn findings_exit_1_with_the_json_object() {
    let o = lint(&[
        "--orbits",
        ORBITS,
        "--lync",
        &ex("examples/lync/site-redmond.ps1"),
        "--format",
        "json",
    ]);
    assert_eq!(code(&o), 1);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["orbits"], 199);
    assert_eq!(v["rules"], 12);
    let f = &v["findings"][1];
    assert_eq!(f["source"], "lync");
    assert!(f["file"].as_str().unwrap().ends_with("site-redmond.ps1"));
    assert_eq!(f["line"], 13);
    assert_eq!(f["rule"], "Feature codes *70xx");
    assert_eq!(
        f["caught"],
        serde_json::json!([{"first": "*7000", "last": "*7049"}])
    );
    assert_eq!(f["count"], 50);
    assert_eq!(f["example"], "*7000");
    // A normalization rule always catches: the orbits are protected in front of it.
    assert_eq!(f["kind"], "catches");
    assert!(f["why"].as_str().unwrap().contains("normalization rule"));
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .starts_with("New-CsVoiceNormalizationRule -Parent 'Site:Redmond'")
    );
}

#[test]
fn each_file_takes_the_context_after_it() {
    let o = lint(&[
        "--orbits",
        ORBITS,
        "--asterisk",
        &ex("examples/asterisk/extensions.conf"),
        "--context",
        "lobby",
        "--freeswitch",
        &ex("examples/freeswitch/default.xml"),
        "--context",
        "default",
        "--format",
        "json",
    ]);
    assert_eq!(code(&o), 1, "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let sources: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["source"].as_str().unwrap())
        .collect();
    // The lobby context is clean; all findings are FreeSWITCH's.
    assert!(!sources.is_empty() && sources.iter().all(|s| *s == "freeswitch"));
}

#[test]
fn orbit_table_from_the_config() {
    let o = Command::new(env!("CARGO_BIN_EXE_callpark"))
        .args([
            "--config",
            "contrib/callpark.example.toml",
            "lint",
            "--lync",
        ])
        .arg(ex("examples/lync/global-export.csv"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("CALLPARK_CONFIG")
        .env("CALLPARK_ARI_PASSWORD", "x")
        .env("CALLPARK_ESL_PASSWORD", "x")
        .output()
        .unwrap();
    assert_eq!(code(&o), 1, "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.starts_with("checked 298 orbits (601-699, 701-799, *7000-*7099)"),
        "{out}"
    );
}

#[test]
fn unreadable_inputs_exit_2() {
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--lync".into(), "/nonexistent/rules.ps1".into()],
            "/nonexistent/rules.ps1: ",
        ),
        (
            vec!["--asterisk".into(), ex("examples/asterisk/extensions.conf")],
            "give its --context NAME after it",
        ),
        (
            vec![
                "--asterisk".into(),
                ex("examples/asterisk/extensions.conf"),
                "--context".into(),
                "nowhere".into(),
            ],
            "no context [nowhere]",
        ),
        (vec![], "nothing to check"),
        (
            vec!["--lync".into(), ex("examples/asterisk/extensions.conf")],
            "extensions.conf:1: no normalization rule found",
        ),
    ];
    for (args, msg) in cases {
        let mut all = vec!["--orbits".to_string(), ORBITS.to_string()];
        all.extend(args);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let o = lint(&refs);
        assert_eq!(code(&o), 2, "{all:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(msg), "{all:?}: {err}");
    }
    // A parse error names file and line.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.xml");
    std::fs::write(&bad, "<include>\n<context name=\"default\">\n</include>\n").unwrap();
    let o = lint(&[
        "--orbits",
        ORBITS,
        "--freeswitch",
        bad.to_str().unwrap(),
        "--context",
        "default",
    ]);
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad.xml:3: XML"));
    // The orbit table's own rules come first: overlapping ranges.
    let o = lint(&[
        "--orbits",
        "701-799,750-760",
        "--lync",
        &ex("lync/protect-orbits.ps1"),
    ]);
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("globally unique"));
    // No --orbits and no readable config.
    let o = lint(&[
        "--config",
        "/nonexistent/callpark.toml",
        "--lync",
        &ex("lync/protect-orbits.ps1"),
    ]);
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--orbits"));
}

#[test]
fn config_and_orbits_exclude_each_other_on_the_command_line() {
    let rules = ex("examples/lync/teams-dialplan.json");
    for config in [
        &["--config", "contrib/callpark.example.toml"][..],
        &["-c", "contrib/callpark.example.toml"],
        &["--config=contrib/callpark.example.toml"],
    ] {
        // Before the subcommand and after it: `--config` is global.
        for before in [true, false] {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_callpark"));
            if before {
                cmd.args(config).arg("lint");
            } else {
                cmd.arg("lint").args(config);
            }
            let o = cmd
                .args(["--orbits", ORBITS, "--lync", &rules])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .env_remove("CALLPARK_CONFIG")
                .output()
                .unwrap();
            assert_eq!(code(&o), 2, "{config:?}");
            assert!(
                String::from_utf8_lossy(&o.stderr).contains("give either --config or --orbits"),
                "{config:?}"
            );
        }
    }
    // CALLPARK_CONFIG is not the command line: --orbits is used.
    let o = Command::new(env!("CARGO_BIN_EXE_callpark"))
        .args(["lint", "--orbits", ORBITS, "--lync", &rules])
        .env("CALLPARK_CONFIG", "/nonexistent/callpark.toml")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn fail_on_chooses_which_findings_fail() {
    let fs = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/lint/freeswitch-vanilla/default.xml")
        .display()
        .to_string();
    let run = |orbits: &str, fail_on: Option<&str>| {
        let mut a = vec![
            "--orbits",
            orbits,
            "--freeswitch",
            &fs,
            "--context",
            "default",
        ];
        if let Some(k) = fail_on {
            a.extend(["--fail-on", k]);
        }
        code(&lint(&a))
    };
    // 1200-1299 in the vanilla plan: `unloop` and `enum` may catch, `acknowledge_call`
    // catches; no destination there.
    assert_eq!(run("1200-1299", None), 1);
    assert_eq!(run("1200-1299", Some("conflict")), 0);
    assert_eq!(run("1200-1299", Some("may")), 1);
    assert_eq!(run("1200-1299", Some("caught")), 1);
    // 1000-1099: the users 1000-1019 conflict.
    assert_eq!(run("1000-1099", Some("conflict")), 1);
    assert_eq!(run("1000-1099", Some("caught,may")), 1);
    // 9199 alone: only catch-alls, two of them "may".
    assert_eq!(run("9199", Some("conflict,may")), 1);
    assert_eq!(run("9199", Some("conflict")), 0);
    let o = lint(&[
        "--orbits",
        "1200-1299",
        "--freeswitch",
        &fs,
        "--context",
        "default",
        "--fail-on",
        "sometimes",
    ]);
    assert_eq!(code(&o), 2);
}
