//! A throwaway PostgreSQL cluster for a test: made with Debian's `initdb` in a temporary
//! directory, started with `pg_ctl` on 127.0.0.1 at a free port (its unix socket in that
//! directory), trust authentication for the user `callpark`, and stopped and deleted when
//! dropped. Nothing stands in for PostgreSQL: when it cannot be found or started, the test
//! fails saying so.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The cluster's superuser, who connects without a password (trust).
pub const PG_USER: &str = "callpark";

/// A running cluster; stopped (immediately: nothing in it is kept) when dropped.
pub struct PgCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// Who runs the server: PostgreSQL refuses to run as root, so a root test hands it to
    /// the `postgres` user (or `nobody`).
    owner: Option<(u32, u32)>,
}

impl PgCluster {
    /// Makes and starts a cluster; panics, saying what is missing, when it cannot.
    pub fn start() -> PgCluster {
        let bin = pg_bin();
        let owner = unprivileged_owner();
        // Under /tmp when root: a root-only TMPDIR would keep the server's user out.
        let dir = match owner {
            Some(_) => tempfile::Builder::new()
                .prefix("callpark-pg-")
                .tempdir_in("/tmp"),
            None => tempfile::Builder::new().prefix("callpark-pg-").tempdir(),
        }
        .expect("a temporary directory for the PostgreSQL cluster");
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("the cluster's directory given to its user");
        }
        let mut c = PgCluster {
            bin,
            dir,
            port: 0,
            owner,
        };
        // No fsync: the cluster lives as long as the test, and a test waiting on disk flushes
        // of a machine shared with others measures the disk, not callpark.
        let out = c.run(
            "initdb",
            &[
                "-D",
                &c.data().display().to_string(),
                "-U",
                PG_USER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        if !out.status.success() {
            panic!(
                "PostgreSQL's initdb failed in {}:\n{}{}",
                c.dir.path().display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // A free port is free only until someone takes it: tried again on another when the
        // server cannot have it.
        let mut last = String::new();
        for _ in 0..5 {
            c.port = free_port();
            match c.try_start() {
                Ok(()) => return c,
                Err(e) => last = e,
            }
        }
        panic!("PostgreSQL did not start: {last}");
    }

    /// The URL of database `db` on this cluster (`postgres` exists from the start).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// The TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates database `name` and gives its URL.
    pub fn create_db(&self, name: &str) -> String {
        let port = self.port.to_string();
        let out = self.run(
            "createdb",
            &["-h", "127.0.0.1", "-p", &port, "-U", PG_USER, name],
        );
        assert!(
            out.status.success(),
            "createdb {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.url(name)
    }

    /// Runs `sql` with `psql` on database `db` as the superuser: its rows, one per line, the
    /// columns split by `|`; an error (psql's message) when the server does not answer.
    pub async fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let path = self.bin.join("psql");
        let out = tokio::process::Command::new(&path)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                PG_USER,
            ])
            .args([
                "-d",
                db,
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .await
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    /// Stops the server (fast: open connections are ended) and starts it again on its port.
    pub fn restart(&self) {
        self.stop();
        if let Err(e) = self.try_start() {
            panic!("PostgreSQL did not start again: {e}");
        }
    }

    /// Starts the server again after [`PgCluster::stop`], on its port.
    pub fn start_again(&self) {
        if let Err(e) = self.try_start() {
            panic!("PostgreSQL did not start again: {e}");
        }
    }

    /// Stops the server; [`PgCluster::restart`] starts it again.
    pub fn stop(&self) {
        let data = self.data().display().to_string();
        let out = self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]);
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn try_start(&self) -> Result<(), String> {
        let (data, log) = (
            self.data().display().to_string(),
            self.dir.path().join("server.log"),
        );
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                &data,
                "-l",
                &log.display().to_string(),
                "-o",
                &opts,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        if out.status.success() {
            return Ok(());
        }
        Err(format!(
            "pg_ctl start on port {}: {}{}\nserver log:\n{}",
            self.port,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        ))
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs one of PostgreSQL's programs as the cluster's owner, in the cluster's directory.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let path = self.bin.join(program);
        let mut cmd = Command::new(&path);
        cmd.args(args).current_dir(self.dir.path());
        if let Some((uid, gid)) = self.owner {
            cmd.uid(uid).gid(gid);
        }
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.data().display().to_string();
        let _ = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }
}

/// The directory of PostgreSQL's programs (initdb, pg_ctl, createdb): `initdb`'s on PATH, or Debian's newest under
/// /usr/lib/postgresql/<version>/bin (the package does not put them on PATH).
fn pg_bin() -> PathBuf {
    // Where initdb really is: a link to it on PATH may stand alone, without createdb beside it.
    if let Some(dir) = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .filter_map(|d| std::fs::canonicalize(d.join("initdb")).ok())
            .find_map(|f| f.parent().map(PathBuf::from))
    }) {
        return dir;
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL's initdb was not found (on PATH or under /usr/lib/postgresql/*/bin): \
             install Debian's postgresql (apt-get install postgresql), as \
             contrib/test-all.sh does"
        ),
    }
}

/// The user (uid, gid) to run the server as when this process is root: `postgres` (Debian's
/// package makes it), else `nobody`.
fn unprivileged_owner() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    for name in ["postgres", "nobody"] {
        let ids = passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() > 3 && f[0] == name {
                Some((f[2].parse().ok()?, f[3].parse().ok()?))
            } else {
                None
            }
        });
        if ids.is_some() {
            return ids;
        }
    }
    panic!("running as root, and neither a `postgres` nor a `nobody` user to run PostgreSQL as")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}
