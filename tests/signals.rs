//! `callpark run` stops in order on SIGTERM (how systemd stops a service), as on Ctrl-C: the
//! pools stop, the store is closed, the exit status is 0.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn sigterm_stops_the_service_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("callpark.toml");
    // A PBX nobody answers: the service keeps retrying, as it would during an outage.
    std::fs::write(
        &config,
        format!(
            "[service]\ndata_dir = \"{}\"\n\n[[pbx]]\nname = \"pbx-b\"\nkind = \"freeswitch\"\naddress = \"127.0.0.1:9\"\npassword = \"x\"\n\n[[orbit_range]]\nname = \"r\"\nfirst = \"601\"\nlast = \"699\"\npool = \"pbx-b\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let log = dir.path().join("log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_callpark"))
        .arg("--config")
        .arg(&config)
        .arg("run")
        .env("CALLPARK_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::OpenOptions::new().append(true).open(&log).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("pool started")
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "callpark did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("stopping (SIGTERM)"), "{text}");
}
