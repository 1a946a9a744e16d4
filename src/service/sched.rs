//! How the admin API's thread is scheduled, so that parking comes first: a lower CPU
//! priority ([`lower_priority`], a nice value) and, when the system lets callpark make one, an
//! idle cgroup of its own ([`idle_cgroup`]). Set on the API's thread before its runtime
//! starts, so the runtime's workers and the store's threads inherit both. Not HTTP: the
//! API (`crate::api`) only runs on the thread placed here.
//!
//! A nice value or SCHED_IDLE on a thread only orders it against the threads of its own
//! cgroup (or scheduler autogroup). Against Asterisk, which lives in another, the API's work
//! counts as callpark's: a woken Asterisk thread can wait for the API's slice to end, and each
//! park crosses Asterisk several times (benches/operator_side.rs measured this as the cost of
//! a thousand event-stream subscribers). A cgroup with `cpu.idle = 1` is an idle entity at
//! its level of the hierarchy: any other task that wakes takes the CPU from it at once.
//!
//! cgroup v1: `<cpu mount><own cgroup>/callpark-api`, and the thread's id into its `tasks`.
//! cgroup v2: the same child made `threaded` (threads of one process may then sit in
//! different cgroups), `+cpu` in the parent's `cgroup.subtree_control`, and the thread's id
//! into `cgroup.threads`; under systemd that needs the unit's `Delegate=cpu`
//! (contrib/callpark.service has it). Threads started afterwards by the placed
//! thread (the API's runtime, its store connections) are born in the same cgroup.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// The child cgroup's name.
const CGROUP: &str = "callpark-api";

#[derive(Debug, Error)]
pub(crate) enum CpuError {
    #[error("no cpu cgroup controller for this process (/proc/self/cgroup)")]
    NoController,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CpuError + '_ {
    move |source| CpuError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Lowers the calling thread's CPU priority (Linux's nice value is per thread and inherited
/// by the threads it starts), so the API's runtime, its store connections and a thousand
/// event-stream writes yield to the pools when the CPU is short. Parking comes first.
pub(crate) fn lower_priority(nice: i32) -> std::io::Result<()> {
    // On Linux, PRIO_PROCESS with a thread's id sets that thread's priority alone.
    let tid = rustix::thread::gettid();
    rustix::process::setpriority_process(Some(tid), nice).map_err(std::io::Error::from)
}

/// Puts the calling thread in an idle cgroup (see the module's comment); returns that
/// cgroup's directory.
pub(crate) fn idle_cgroup() -> Result<PathBuf, CpuError> {
    let own_file = Path::new("/proc/self/cgroup");
    let own = std::fs::read_to_string(own_file).map_err(io(own_file))?;
    let (dir, v2) = cgroup_dir(&own, Path::new("/sys/fs/cgroup")).ok_or(CpuError::NoController)?;
    let tid = rustix::thread::gettid().as_raw_pid();
    place(&dir, v2, &tid.to_string())?;
    Ok(dir)
}

/// The API's cgroup directory for a process whose `/proc/self/cgroup` reads `own`, with the
/// cgroup file systems under `root`, and whether it is cgroup v2.
fn cgroup_dir(own: &str, root: &Path) -> Option<(PathBuf, bool)> {
    // cgroup v1: `N:controllers:/path`, the cpu controller mounted by its controllers' names.
    for line in own.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(ctrl), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if ctrl.split(',').any(|c| c == "cpu") {
            let mount = [ctrl, "cpu", "cpu,cpuacct"]
                .iter()
                .map(|m| root.join(m))
                .find(|m| m.join("cpu.shares").exists())?;
            return Some((mount.join(path.trim_start_matches('/')).join(CGROUP), false));
        }
    }
    // cgroup v2: `0::/path` under the unified mount.
    let path = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    root.join("cgroup.controllers")
        .exists()
        .then(|| (root.join(path.trim_start_matches('/')).join(CGROUP), true))
}

/// Makes `dir` an idle cgroup (threaded under v2) and moves thread `tid` into it.
fn place(dir: &Path, v2: bool, tid: &str) -> Result<(), CpuError> {
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(io(dir)(e)),
        _ => {}
    }
    let write = |name: &str, value: &str| {
        let path = dir.join(name);
        std::fs::write(&path, value).map_err(io(&path))
    };
    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    if v2 {
        if read(&dir.join("cgroup.type")).trim() != "threaded" {
            write("cgroup.type", "threaded")?;
        }
        let parent = dir.parent().unwrap_or(dir).join("cgroup.subtree_control");
        if !read(&parent).split_whitespace().any(|c| c == "cpu") {
            std::fs::write(&parent, "+cpu").map_err(io(&parent))?;
        }
    }
    write("cpu.idle", "1")?;
    write(if v2 { "cgroup.threads" } else { "tasks" }, tid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cpu_controller_of_v1_and_v2() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        // Nothing mounted: no controller.
        assert_eq!(cgroup_dir("0::/\n", r), None);
        // v2, in a systemd service's cgroup.
        std::fs::write(r.join("cgroup.controllers"), "cpu io memory pids\n").unwrap();
        assert_eq!(
            cgroup_dir("0::/system.slice/callpark.service\n", r),
            Some((r.join("system.slice/callpark.service/callpark-api"), true))
        );
        // v1 wins where both are listed (hybrid): cpu and cpuacct mounted together.
        std::fs::create_dir(r.join("cpu,cpuacct")).unwrap();
        std::fs::write(r.join("cpu,cpuacct/cpu.shares"), "1024").unwrap();
        let own = "9:name=systemd:/\n3:cpu,cpuacct:/svc\n0::/\n";
        assert_eq!(
            cgroup_dir(own, r),
            Some((r.join("cpu,cpuacct/svc/callpark-api"), false))
        );
        // ... or cpu alone, at the root cgroup.
        std::fs::create_dir(r.join("cpu")).unwrap();
        std::fs::write(r.join("cpu/cpu.shares"), "1024").unwrap();
        assert_eq!(
            cgroup_dir("1:cpu:/\n2:cpuacct:/\n", r),
            Some((r.join("cpu/callpark-api"), false))
        );
    }

    #[test]
    fn writes_what_each_version_needs() {
        let root = tempfile::tempdir().unwrap();
        let v1 = root.path().join("v1/callpark-api");
        std::fs::create_dir_all(v1.parent().unwrap()).unwrap();
        place(&v1, false, "4242").unwrap();
        assert_eq!(std::fs::read_to_string(v1.join("cpu.idle")).unwrap(), "1");
        assert_eq!(std::fs::read_to_string(v1.join("tasks")).unwrap(), "4242");
        // Again (a restart): the cgroup is there already.
        place(&v1, false, "4343").unwrap();
        let v2 = root.path().join("v2/callpark-api");
        std::fs::create_dir_all(v2.parent().unwrap()).unwrap();
        place(&v2, true, "7").unwrap();
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(v2.join("cgroup.type")), "threaded");
        assert_eq!(read(root.path().join("v2/cgroup.subtree_control")), "+cpu");
        assert_eq!(read(v2.join("cgroup.threads")), "7");
        // Where it cannot be made, the error names the file.
        let err = place(&root.path().join("none/callpark-api"), false, "1").unwrap_err();
        assert!(err.to_string().contains("none/callpark-api"), "{err}");
    }
}
