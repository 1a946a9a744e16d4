//! The dial-plan includes `callpark dialplan` generates, and putting one in place on the
//! Asterisk testbed.

use std::path::Path;
use std::process::Command;

use crate::{REPO, bin, tb};

/// `callpark dialplan <kind> --pool <pool>` for a configuration file.
pub fn generated_include(config: &Path, kind: &str, pool: &str) -> String {
    let out = Command::new(bin())
        .arg("--config")
        .arg(config)
        .args(["dialplan", kind, "--pool", pool])
        .output()
        .expect("run callpark dialplan");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Puts `text` in place as the Asterisk testbed's callpark.conf and reloads the dialplan, when
/// it is not already the one in place.
pub fn install_asterisk_include(text: &str) {
    let path = Path::new(&tb("ROOT")).join("etc/asterisk/callpark.conf");
    if std::fs::read_to_string(&path).ok().as_deref() == Some(text) {
        return;
    }
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let script = Path::new(REPO).join("contrib/testbed/asterisk/testbed.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args(["cli", "dialplan reload"])
        .output()
        .expect("run testbed.sh cli");
    assert!(out.status.success(), "dialplan reload: {out:?}");
}
