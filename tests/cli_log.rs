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

/// Read-only commands never talk to the PBX, so they never ask for its secret; `check-config`
/// warns about it and `run` refuses to start without it, naming the variable.
#[test]
fn read_only_commands_need_no_secret_and_run_names_the_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("callpark.toml");
    std::fs::write(
        &config,
        format!(
            "[service]\ndata_dir = \"{}\"\n\n[[pbx]]\nname = \"pbx-a\"\nkind = \"asterisk\"\naddress = \"http://127.0.0.1:1\"\nusername = \"callpark\"\npassword_env = \"CALLPARK_TEST_UNSET_SECRET\"\n\n[[orbit_range]]\nname = \"main\"\nfirst = \"701\"\nlast = \"709\"\npool = \"pbx-a\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_callpark"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .env_remove("CALLPARK_TEST_UNSET_SECRET")
            .env_remove("CALLPARK_LOG")
            .output()
            .expect("run callpark")
    };
    for args in [
        &["parked"][..],
        &["orbits"],
        &["log"],
        &["dialplan", "asterisk"],
    ] {
        let out = run(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    let out = run(&["check-config"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("warning: ")
            && text.contains("pbx[0].password")
            && text.contains("CALLPARK_TEST_UNSET_SECRET"),
        "{text}"
    );
    let out = run(&["run"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pbx[0].password") && err.contains("CALLPARK_TEST_UNSET_SECRET"),
        "{err}"
    );
}
