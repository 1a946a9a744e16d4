//! `callpark run` as a process with a test's own configuration ([`Setup`]), what its store
//! and log say, and the pieces a test's configuration is made of.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use callpark::park::ParkedCall;
use callpark::store::{LogRow, Store};

use crate::stats::ms;
use crate::{REPO, bin, fs, generated_include, install_asterisk_include, tb, wait_for};

/// `callpark run` against the testbed, with a configuration of the test's own.
pub struct Callpark {
    log_filter: &'static str,
    /// Setup::env, for every start of the process.
    env: Vec<(String, String)>,
    /// What the log says once per pool when it is connected.
    markers: Vec<&'static str>,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    /// `[service] database` when the configuration sets one (a PostgreSQL URL).
    database: Option<String>,
}

/// `[service] database = "…"` of a configuration's text.
fn database_of(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let v = l
            .trim()
            .strip_prefix("database")?
            .trim_start()
            .strip_prefix('=')?;
        Some(v.trim().trim_matches('"').to_string())
    })
}

/// The `[park]` and `[[policy]]` part of a test's configuration; the rest is the testbed's.
pub struct Setup {
    pub park: String,
    pub policy: String,
    /// Orbit ranges of pool pbx-a (must lie in the testbed dialplan's 701-799 / *7000-*7099).
    pub ranges: Vec<(&'static str, &'static str)>,
    /// ARI base URL when not the testbed's own (a [`Cutter`](crate::Cutter) in front of it).
    pub ari_url: Option<String>,
    /// CALLPARK_LOG of the process: tests read its debug lines; benchmarks run it as shipped.
    pub log: &'static str,
    /// More keys for the `[[pbx]]` entry (`sip_endpoint = "alice"`).
    pub pbx_extra: &'static str,
    /// Whether pool pbx-a (the Asterisk testbed) is configured.
    pub asterisk: bool,
    /// Orbit ranges of pool pbx-b, the FreeSWITCH testbed; no pbx-b when empty. They must lie
    /// in 601-699, which the testbed's include (the shipped dialplan/freeswitch/callpark.xml)
    /// routes to callpark.
    pub fs_ranges: Vec<(&'static str, &'static str)>,
    /// More keys for pbx-b.
    pub fs_extra: &'static str,
    /// Whether pbx-b listens for the include's outbound connections on the shipped include's
    /// address (127.0.0.1:8041). Several nodes leave it unset, as README says.
    pub fs_outbound: bool,
    /// The event socket's address when not the testbed's own (a [`Cutter`](crate::Cutter) in
    /// front of it).
    pub esl_addr: Option<String>,
    /// FreeSWITCH's include generated from this configuration (its music settings) instead of
    /// the shipped one; its orbits are then only this configuration's.
    pub fs_include_from_config: bool,
    /// The same for Asterisk's include.
    pub ast_include_from_config: bool,
    /// More environment variables for the `callpark run` process (`NOTIFY_SOCKET`, ...).
    pub env: Vec<(String, String)>,
    /// More TOML at the end of the file: `[[lot]]` tables, ranges naming a lot.
    pub extra: String,
    /// More keys for `[service]` (`keep_log = "1h"`).
    pub service: String,
}

impl Setup {
    /// Pool pbx-b on the FreeSWITCH testbed alone, orbits 601-699.
    pub fn freeswitch() -> Setup {
        Setup {
            asterisk: false,
            ranges: vec![],
            fs_ranges: vec![("601", "699")],
            ..Setup::default()
        }
    }
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            park:
                "pickup_timeout = \"10s\"\nmax_pickup_attempts = 1\nringback_ring_time = \"5s\"\n"
                    .into(),
            policy:
                "[[policy]]\nname = \"everyone\"\nenable_call_park = true\npatterns = [\".*\"]\n"
                    .into(),
            ranges: vec![("701", "799")],
            ari_url: None,
            log: "callpark=debug",
            pbx_extra: "",
            asterisk: true,
            fs_ranges: vec![],
            fs_extra: "",
            fs_outbound: true,
            esl_addr: None,
            fs_include_from_config: false,
            ast_include_from_config: false,
            env: vec![],
            extra: String::new(),
            service: String::new(),
        }
    }
}

impl Callpark {
    /// Writes the configuration into a data directory under the chroot (so the chrooted
    /// Asterisk can read files callpark keeps there) and starts the service.
    pub async fn start(setup: &Setup) -> Callpark {
        let mut cp = Callpark::prepare(setup).await;
        cp.spawn().await;
        cp
    }

    /// A node of several sharing one PostgreSQL store (`[service] database` and `node` in
    /// `setup.service`), started without waiting for any PBX: it may stand by. Waits until it
    /// drives its pools under leases.
    pub async fn start_node(setup: &Setup) -> Callpark {
        let mut cp = Callpark::prepare(setup).await;
        cp.spawn_until_logged("pools are driven under leases").await;
        cp
    }

    /// The configuration and includes of `setup` written and installed; not started.
    async fn prepare(setup: &Setup) -> Callpark {
        let dir = run_dir();
        let mut text = format!(
            "[service]\ndata_dir = \"{}\"\n{}\n\n[park]\n{}\n{}\n",
            dir.path().join("data").display(),
            setup.service,
            setup.park,
            setup.policy
        );
        let mut markers = Vec::new();
        if setup.asterisk {
            text.push_str(&format!(
                "[[pbx]]\nname = \"pbx-a\"\nkind = \"asterisk\"\naddress = \"{}\"\nusername = \"{}\"\npassword = \"{}\"\napp = \"{}\"\n",
                setup.ari_url.clone().unwrap_or_else(|| tb("ARI_URL")),
                tb("ARI_USER"),
                tb("ARI_PASSWORD"),
                tb("ARI_APP")
            ));
            text.push_str(setup.pbx_extra);
            text.push('\n');
            markers.push("connected to ARI");
        }
        if !setup.fs_ranges.is_empty() {
            text.push_str(&format!(
                "[[pbx]]\nname = \"pbx-b\"\nkind = \"freeswitch\"\naddress = \"{}\"\npassword = \"{}\"\n",
                setup.esl_addr.clone().unwrap_or_else(fs::esl_addr),
                fs::fb("ESL_PASSWORD"),
            ));
            // The shipped include's outbound address (the example configuration's).
            if setup.fs_outbound && !setup.fs_extra.contains("outbound") {
                text.push_str("outbound = \"127.0.0.1:8041\"\n");
            }
            text.push_str(setup.fs_extra);
            text.push('\n');
            markers.push("connected to FreeSWITCH");
        }
        let pools = [("pbx-a", &setup.ranges), ("pbx-b", &setup.fs_ranges)];
        for (pool, ranges) in pools {
            for (i, (first, last)) in ranges.iter().enumerate() {
                text.push_str(&format!(
                    "\n[[orbit_range]]\nname = \"{pool}-r{i}\"\nfirst = \"{first}\"\nlast = \"{last}\"\npool = \"{pool}\"\n"
                ));
            }
        }
        text.push('\n');
        text.push_str(&setup.extra);
        let config = dir.path().join("callpark.toml");
        std::fs::write(&config, text).unwrap();
        if setup.asterisk {
            let include = if setup.ast_include_from_config {
                generated_include(&config, "asterisk", "pbx-a")
            } else {
                let p = Path::new(REPO).join("dialplan/asterisk/callpark.conf");
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            };
            install_asterisk_include(&include);
        }
        if !setup.fs_ranges.is_empty() {
            let include = if setup.fs_include_from_config {
                fs::generated_include(&config)
            } else {
                fs::shipped_include()
            };
            fs::install_include(&fs::Esl::connect().await, &include).await;
        }
        let log = dir.path().join("callpark.log");
        Callpark {
            log_filter: setup.log,
            env: setup.env.clone(),
            markers,
            dir,
            config,
            log,
            child: None,
            database: database_of(&setup.service),
        }
    }

    /// `callpark run` with a whole configuration of the test's own (an import's output, say):
    /// `{data_dir}` in it becomes this run's data directory. The includes of the pools it
    /// names `pbx-a` (the Asterisk testbed) and `pbx-b` (the FreeSWITCH testbed) are generated
    /// from it and installed.
    pub async fn start_config(text: &str) -> Callpark {
        let dir = run_dir();
        let text = text.replace("{data_dir}", &dir.path().join("data").display().to_string());
        let config = dir.path().join("callpark.toml");
        std::fs::write(&config, &text).unwrap();
        let mut markers = Vec::new();
        if text.contains("name = \"pbx-a\"") {
            install_asterisk_include(&generated_include(&config, "asterisk", "pbx-a"));
            markers.push("connected to ARI");
        }
        if text.contains("name = \"pbx-b\"") {
            fs::install_include(&fs::Esl::connect().await, &fs::generated_include(&config)).await;
            markers.push("connected to FreeSWITCH");
        }
        let log = dir.path().join("callpark.log");
        let mut cp = Callpark {
            log_filter: "callpark=debug",
            env: Vec::new(),
            markers,
            dir,
            config,
            log,
            child: None,
            database: database_of(&text),
        };
        cp.spawn().await;
        cp
    }

    /// Starts (again) the process and waits until its log says `what` once more.
    pub async fn spawn_until_logged(&mut self, what: &str) {
        let before = self.log_text().matches(what).count();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        self.child = Some(self.command(log).spawn().expect("start callpark"));
        wait_for(
            &format!("callpark to log `{what}`"),
            Duration::from_secs(20),
            || async { (self.log_text().matches(what).count() > before).then_some(()) },
        )
        .await;
    }

    /// Starts (again) the process and waits until every pool is connected.
    pub async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let count = |text: &str| -> Vec<usize> {
            self.markers
                .iter()
                .map(|m| text.matches(m).count())
                .collect()
        };
        let before = count(&std::fs::read_to_string(&self.log).unwrap_or_default());
        let child = self.command(log).spawn().expect("start callpark");
        self.child = Some(child);
        let path = self.log.clone();
        wait_for(
            "callpark to connect to every PBX",
            Duration::from_secs(20),
            || async {
                let t = std::fs::read_to_string(&path).unwrap_or_default();
                let now = count(&t);
                now.iter().zip(&before).all(|(n, b)| n > b).then_some(())
            },
        )
        .await;
    }

    /// `callpark run` as the tests start it, its output appended to `log`.
    fn command(&self, log: std::fs::File) -> Command {
        let mut c = Command::new(bin());
        c.arg("--config")
            .arg(&self.config)
            .arg("run")
            .env("CALLPARK_LOG", self.log_filter)
            .env("NO_COLOR", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        c
    }

    /// Starts the process the way systemd does (`NOTIFY_SOCKET`), and waits for its
    /// `READY=1`: the time from exec to ready, every pool connected and reconciled.
    pub async fn spawn_until_ready(&mut self, timeout: Duration) -> Duration {
        let sock = self.dir.path().join("notify.sock");
        let _ = std::fs::remove_file(&sock);
        let listener = tokio::net::UnixDatagram::bind(&sock).expect("bind a notify socket");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = self.command(log);
        cmd.env("NOTIFY_SOCKET", &sock);
        // CALLPARK_RESTART_LOG also logs the restarts in full (the steps' times).
        if std::env::var_os("CALLPARK_RESTART_LOG").is_some() {
            cmd.env("CALLPARK_LOG", "callpark=debug");
        }
        let t0 = std::time::Instant::now();
        self.child = Some(cmd.spawn().expect("start callpark"));
        let mut buf = vec![0u8; 4096];
        let ready = tokio::time::timeout(timeout, async {
            loop {
                let n = listener
                    .recv(&mut buf)
                    .await
                    .expect("read the notify socket");
                if String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .any(|l| l == "READY=1")
                {
                    return t0.elapsed();
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no READY=1 within {timeout:?}:\n{}", self.log_text()));
        let _ = std::fs::remove_file(&sock);
        ready
    }

    /// Stops the process as systemd does (SIGTERM), starts it again under `NOTIFY_SOCKET`
    /// and checks that every one of `parked` calls is restored from the store and, by
    /// `alive`, still parked on the PBX, with no warning logged: the benchmarks' restart
    /// phase. Prints and returns the time from exec to READY=1.
    pub async fn restart_with_calls<F, Fut>(
        &mut self,
        run: usize,
        of: usize,
        parked: usize,
        pbx: &str,
        alive: F,
    ) -> Duration
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(30)).await;
        if let Ok(prefix) = std::env::var("CALLPARK_RESTART_LOG") {
            // The store as the restart finds it, for a look at what reading it costs.
            std::fs::copy(self.db(), format!("{prefix}.{run}.db")).expect("copy the store");
        }
        let mark = self.log_text().len();
        let ready = self.spawn_until_ready(Duration::from_secs(30)).await;
        let calls = self.parked().await;
        let mut up = 0;
        for c in &calls {
            if alive(c.channel.as_str().to_string()).await {
                up += 1;
            }
        }
        let log = self.log_text();
        // CALLPARK_RESTART_LOG=PREFIX keeps each restart's part of callpark's log for a look.
        if let Ok(prefix) = std::env::var("CALLPARK_RESTART_LOG") {
            std::fs::write(format!("{prefix}.{run}"), &log[mark..]).expect("write the log");
        }
        let problems = log[mark..]
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .count();
        println!(
            "restart {run}/{of} with {parked} calls parked: exec to READY=1 in {}; {} in the store, {up} alive in {pbx}, {problems} warnings/errors",
            ms(ready),
            calls.len()
        );
        assert_eq!(calls.len(), parked, "every call restored");
        assert_eq!(up, parked, "every call still parked after the restart");
        assert_eq!(problems, 0, "callpark logged warnings:\n{}", &log[mark..]);
        ready
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The process ended by itself (a zombie not yet reaped, or gone): a fault run that finds
    /// it so reports it, rather than every invariant that breaks after.
    pub fn exited(&self) -> bool {
        let Some(pid) = self.pid() else {
            return false;
        };
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // The state follows the command name, which is in parentheses.
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
            Err(_) => true,
        }
    }

    /// SIGSTOP: the process holds its sockets open but handles nothing (a hung callpark).
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// SIGCONT after [`Callpark::freeze`].
    pub fn thaw(&self) {
        self.signal("CONT");
    }

    /// Sends `signal` (`TERM`, `STOP`, ...) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("callpark is running").to_string();
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("run kill");
        assert!(ok.success(), "kill -{signal} {pid}");
    }

    /// Waits for the process to exit by itself; panics after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("callpark is running");
        let status = wait_for("callpark to exit", timeout, || {
            let s = child.try_wait().expect("wait for callpark");
            async move { s }
        })
        .await;
        self.child = None;
        status
    }

    /// SIGKILL: nothing in memory survives, nothing is flushed.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("data/callpark.db")
    }

    async fn store(&self) -> Store {
        match &self.database {
            Some(url) => Store::open_at(&callpark::store::Location::from_setting(url))
                .await
                .expect("open the store"),
            None => Store::open(&self.db()).await.expect("open the store"),
        }
    }

    pub async fn parked(&self) -> Vec<ParkedCall> {
        let s = self.store().await;
        let v = s.parked(None).await.unwrap();
        s.close().await;
        v.into_iter().map(|(_, c)| c).collect()
    }

    pub async fn log_rows(&self) -> Vec<LogRow> {
        let s = self.store().await;
        let v = s.log(10_000).await.unwrap();
        s.close().await;
        v
    }

    /// The first log entry of `kind` for `channel`; panics naming both when there is none.
    pub async fn log_row(&self, channel: &str, kind: &str) -> LogRow {
        self.log_rows()
            .await
            .into_iter()
            .find(|r| r.kind == kind && r.channel == channel)
            .unwrap_or_else(|| panic!("no `{kind}` entry in the log for {channel}"))
    }

    /// Log kinds of one channel, oldest first.
    pub async fn kinds_of(&self, channel: &str) -> Vec<String> {
        let mut rows: Vec<LogRow> = self
            .log_rows()
            .await
            .into_iter()
            .filter(|r| r.channel == channel)
            .collect();
        rows.sort_by_key(|r| r.id);
        rows.into_iter().map(|r| r.kind).collect()
    }

    /// Waits for the call parked on `orbit`.
    pub async fn wait_parked_on(&self, orbit: &str) -> ParkedCall {
        wait_for(
            &format!("a call parked on {orbit}"),
            Duration::from_secs(10),
            || async {
                self.parked()
                    .await
                    .into_iter()
                    .find(|c| c.orbit.map(|o| o.to_string()).as_deref() == Some(orbit))
            },
        )
        .await
    }

    /// Waits until the event log has `kind` for `channel`.
    pub async fn wait_log(&self, channel: &str, kind: &str, timeout: Duration) {
        wait_for(
            &format!("log entry {kind} for {channel}"),
            timeout,
            || async {
                self.kinds_of(channel)
                    .await
                    .iter()
                    .any(|k| k == kind)
                    .then_some(())
            },
        )
        .await;
    }
}

impl Drop for Callpark {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- callpark log ({}) ----\n{}",
                self.log.display(),
                self.log_text()
            );
        }
    }
}

/// An `[api]` table on a free loopback port with bearer `token` (kept in a file of the
/// returned directory, which must outlive the service): its TOML for [`Setup::extra`], to
/// which more `[api]` keys may be appended, and the port.
pub fn api_table(token: &str) -> (String, u16, tempfile::TempDir) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, token).unwrap();
    let toml = format!(
        "[api]\nlisten = \"127.0.0.1:{port}\"\ntoken_file = \"{}\"\n",
        token_file.display()
    );
    (toml, port, dir)
}

/// A webhook that takes every connection and never answers: its URL.
pub async fn dead_webhook() -> String {
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", dead.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = dead.accept().await {
            held.push(s);
        }
    });
    url
}

/// A fresh directory for one `callpark run` (configuration, store, log), under the Asterisk
/// chroot so that the chrooted Asterisk can read the files callpark keeps there.
fn run_dir() -> tempfile::TempDir {
    let root = PathBuf::from(tb("ROOT"));
    let base = root.join("var/lib/callpark-tests");
    std::fs::create_dir_all(&base).unwrap();
    let mut dir = tempfile::Builder::new()
        .prefix("t")
        .tempdir_in(&base)
        .unwrap();
    // CALLPARK_KEEP_DIRS=1 keeps each run's configuration, log and store for a look after a
    // benchmark that only counts what went wrong.
    if std::env::var_os("CALLPARK_KEEP_DIRS").is_some() {
        dir.disable_cleanup(true);
        eprintln!("callpark data: {}", dir.path().display());
    }
    dir
}
