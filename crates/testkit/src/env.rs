//! Where things are: the repository, the `callpark` binary, and the Asterisk testbed's
//! connection facts (its testbed.env).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The repository's root (this crate lives in `crates/testkit`).
pub const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The `callpark` binary cargo built for the test or benchmark running. Cargo names it to
/// integration tests only at compile time (`CARGO_BIN_EXE_callpark`), not to a library they
/// use; it is built beside them: a test runs from `target/<profile>/deps/`, the binary is
/// `target/<profile>/callpark`. `CALLPARK_BIN` overrides.
pub fn bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CALLPARK_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("the running test's path");
    let p = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("callpark"))
        .expect("the test runs from target/<profile>/deps");
    assert!(
        p.exists(),
        "{} does not exist: run the tests with cargo (it builds the binary), or set CALLPARK_BIN",
        p.display()
    );
    p
}

/// A testbed's testbed.env (`KEY=VALUE` lines, `#` comments), with `<prefix>ROOT` set from the
/// environment when there, else from `<prefix>DEFAULT_ROOT`.
pub fn read_testbed_env(file: &str, prefix: &str) -> HashMap<String, String> {
    let path = Path::new(REPO).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut m: HashMap<String, String> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let root_key = format!("{prefix}ROOT");
    let root =
        std::env::var(&root_key).unwrap_or_else(|_| m[&format!("{prefix}DEFAULT_ROOT")].clone());
    m.insert(root_key, root);
    m
}

/// The Asterisk testbed's testbed.env; `CALLPARK_TESTBED_ROOT` from the environment wins.
pub fn testbed_env() -> &'static HashMap<String, String> {
    static ENV: OnceLock<HashMap<String, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        read_testbed_env("contrib/testbed/asterisk/testbed.env", "CALLPARK_TESTBED_")
    })
}

pub fn tb(key: &str) -> String {
    testbed_env()
        .get(&format!("CALLPARK_TESTBED_{key}"))
        .unwrap_or_else(|| panic!("testbed.env has no CALLPARK_TESTBED_{key}"))
        .clone()
}
