//! `[service] log` sets the log filter of the `callpark` process; `CALLPARK_LOG` overrides it.

use std::process::{Command, Output};

fn check_config(log: &str, env: Option<&str>) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("callpark.toml");
    std::fs::write(
        &config,
        format!(
            "[service]\ndata_dir = \"{}\"\nlog = \"{log}\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callpark"));
    cmd.arg("--config")
        .arg(&config)
        .arg("check-config")
        .env_remove("CALLPARK_LOG")
        .env_remove("CALLPARK_SERVICE__LOG");
    if let Some(filter) = env {
        cmd.env("CALLPARK_LOG", filter);
    }
    cmd.output().expect("run callpark")
}

fn logged_debug(out: &Output) -> bool {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stderr).contains("configuration loaded")
}

#[test]
fn the_files_filter_is_used() {
    assert!(logged_debug(&check_config("debug", None)));
    assert!(logged_debug(&check_config("callpark=debug", None)));
    assert!(!logged_debug(&check_config("info", None)));
}

#[test]
fn callpark_log_overrides_the_file() {
    assert!(!logged_debug(&check_config("debug", Some("info"))));
    assert!(logged_debug(&check_config("info", Some("callpark=debug"))));
}

#[test]
fn a_bad_filter_is_a_configuration_error() {
    let out = check_config("callpark=loud", None);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":3: service.log: `callpark=loud`"), "{err}");
}
