//! The testbeds' turn: one test, benchmark or fault run at a time drives a PBX.

use std::sync::OnceLock;

use tokio::sync::{Mutex, MutexGuard};

/// The testbeds' turn, held by one test at a time.
pub struct Turn {
    _in_process: MutexGuard<'static, ()>,
    /// Locked (flock) while held: test binaries and benchmarks run as separate processes.
    _across_processes: Vec<std::fs::File>,
}

/// One Asterisk and one FreeSWITCH serve every test, benchmark and fault run on the machine;
/// they take turns, within this process and across processes (a second `cargo test` or a
/// benchmark started meanwhile waits instead of resetting a PBX under a running test).
pub async fn exclusive() -> Turn {
    turn(&["asterisk", "freeswitch"]).await
}

/// The turn of one testbed only (`asterisk` or `freeswitch`), for a run that drives one PBX:
/// the long fault runs of both PBXes can then go side by side.
pub async fn exclusive_of(testbed: &'static str) -> Turn {
    turn(&[testbed]).await
}

async fn turn(testbeds: &[&'static str]) -> Turn {
    static LOCK: OnceLock<Mutex<()>> = OnceLock::new();
    let in_process = LOCK.get_or_init(|| Mutex::new(())).lock().await;
    let mut files = Vec::new();
    // Always in this order, so two turns never wait on each other crosswise.
    for t in testbeds {
        let path = std::env::temp_dir().join(format!("callpark-testbed-{t}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let file = tokio::task::spawn_blocking(move || {
            use std::os::fd::AsRawFd;
            // flock(2): released by the kernel when the file closes, even if the test is
            // killed.
            // SAFETY: the descriptor belongs to `file`, which outlives the call.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
                panic!(
                    "lock {}: {}",
                    path.display(),
                    std::io::Error::last_os_error()
                );
            }
            file
        })
        .await
        .unwrap();
        files.push(file);
    }
    Turn {
        _in_process: in_process,
        _across_processes: files,
    }
}
