//! The Debian package (contrib/package.sh) installed with dpkg into a fresh Debian root, as an
//! administrator would install it: every path with its owner, group and mode, the `callpark`
//! system user, `callpark check-config` as that user, `systemd-analyze verify` on the unit; an
//! upgrade to a rebuilt package keeps an edited configuration and a parked call in the store;
//! `dpkg -r` keeps configuration and store, `dpkg --purge` removes them.
//!
//! The package is built around the binary under test (the debug build `cargo test` made), so
//! no release build is needed. The root is a `debootstrap --variant=minbase` of the host's
//! Debian release (`CALLPARK_DEB_TEST_SUITE` names another) with systemd added, whose own
//! `systemd-analyze` checks the unit against the systemd the package is installed with. It is
//! made once under /var/tmp/callpark-deb-test (`CALLPARK_DEB_TEST_DIR`), which takes about a
//! minute and the network, and copied afresh for every run.
//!
//! Needs root (debootstrap, chroot, dpkg in the root) and installs debootstrap on the host
//! when it is missing. A step that cannot run fails the test and says why; nothing is skipped.

use std::borrow::BorrowMut;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use callpark::park::{CallState, Change, ChannelId, ParkedCall, Parker, Party};
use callpark::store::Store;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// What the base root holds beyond minbase: systemd for the unit's directories and its
/// `systemd-analyze`, and the installed system the package meets on a real machine.
const BASE_PACKAGES: &[&str] = &["systemd"];
const PATH: &str = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
/// apt in the root. A testing or unstable release's Release file may be past its Valid-Until
/// date (as the Asterisk testbed's sid is); its packages are still the ones wanted.
const APT: &[&str] = &[
    "apt-get",
    "-q",
    "-y",
    "-o",
    "Acquire::Check-Valid-Until=false",
    "-o",
    "Dpkg::Use-Pty=0",
    "-o",
    "APT::Install-Recommends=false",
];
/// The files the package installs (directories aside), each `owner:group mode`.
const FILES: &[(&str, &str)] = &[
    ("/usr/bin/callpark", "root:root 755 regular file"),
    ("/etc/callpark/callpark.toml", "root:root 644 regular file"),
    ("/etc/default/callpark", "root:callpark 640 regular file"),
    (
        "/usr/lib/systemd/system/callpark.service",
        "root:root 644 regular file",
    ),
];
const STATE_DIR: (&str, &str) = ("/var/lib/callpark", "callpark:callpark 750 directory");
/// The stored call that must outlive the upgrade.
const CHANNEL: &str = "package-upgrade-1";

fn output(mut cmd: impl BorrowMut<Command>) -> Output {
    let cmd = cmd.borrow_mut();
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The last `n` lines of `s`.
fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs `cmd`; its stdout when it succeeds, else a panic with everything it printed.
fn run(what: &str, mut cmd: impl BorrowMut<Command>) -> String {
    let cmd = cmd.borrow_mut();
    let out = output(&mut *cmd);
    assert!(
        out.status.success(),
        "{what} failed ({}): {cmd:?}\n{}",
        out.status,
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn step(t0: Instant, what: &str) {
    eprintln!(
        "package test: {:>5.1} s  {what}",
        t0.elapsed().as_secs_f64()
    );
}

/// The Debian release to install into: the host's unless `CALLPARK_DEB_TEST_SUITE` says.
fn suite() -> String {
    if let Ok(s) = std::env::var("CALLPARK_DEB_TEST_SUITE") {
        return s;
    }
    let os = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let field = |k: &str| {
        os.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim_matches('"').to_string())
    };
    match (field("ID").as_deref(), field("VERSION_CODENAME")) {
        (Some("debian"), Some(codename)) if !codename.is_empty() => codename,
        _ => panic!(
            "the host is not a Debian release with a codename (/etc/os-release): set CALLPARK_DEB_TEST_SUITE to the Debian release the package is for (bookworm, trixie...)"
        ),
    }
}

/// debootstrap on the host, installed with apt when missing (as the Asterisk testbed does).
fn ensure_debootstrap() {
    if Path::new("/usr/sbin/debootstrap").exists() {
        return;
    }
    eprintln!("package test: apt-get install debootstrap (on the host)");
    run(
        "apt-get update on the host (for debootstrap)",
        Command::new("apt-get").args(["-q", "update"]),
    );
    run(
        "apt-get install debootstrap on the host",
        Command::new("apt-get")
            .args(["-q", "-y", "install", "debootstrap"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    );
}

/// A command run as root inside `root`, with a clean environment.
fn in_root(root: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("chroot");
    c.arg(root).args([
        "/usr/bin/env",
        "-i",
        PATH,
        "HOME=/root",
        "LANG=C.UTF-8",
        "DEBIAN_FRONTEND=noninteractive",
    ]);
    c.args(args);
    c
}

/// A command run inside `root` as the `callpark` user and group (setpriv from the root's own
/// util-linux, so the names and the supplementary groups are the root's).
fn as_callpark(root: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("chroot");
    c.arg(root).args([
        "/usr/bin/env",
        "-i",
        PATH,
        "HOME=/var/lib/callpark",
        "LANG=C.UTF-8",
        "setpriv",
        "--reuid=callpark",
        "--regid=callpark",
        "--init-groups",
    ]);
    c.args(args);
    c
}

/// The cached base root of `suite` under `work`: made when missing (or made from another
/// recipe), then only read. With it, the lock that keeps another run from making it again
/// while this one copies it.
fn base_root(work: &Path, suite: &str) -> (PathBuf, std::fs::File) {
    let base = work.join(format!("{suite}-base"));
    let recipe = format!(
        "debootstrap --variant=minbase {suite}; apt-get install {}\n",
        BASE_PACKAGES.join(" ")
    );
    let marker = base.join(".callpark-deb-test");
    let lock = std::fs::File::create(work.join(format!("{suite}.lock"))).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(recipe.as_str()) {
        return (base, lock);
    }
    let t0 = Instant::now();
    let new = work.join(format!("{suite}-base.new"));
    for d in [&base, &new] {
        run(
            "removing an unfinished root",
            Command::new("rm")
                .arg("-rf")
                .arg("--one-file-system")
                .arg(d),
        );
    }
    ensure_debootstrap();
    eprintln!(
        "package test: debootstrap --variant=minbase {suite} {} (about a minute, once)",
        new.display()
    );
    let out = output(
        Command::new("/usr/sbin/debootstrap")
            .args(["--variant=minbase", suite])
            .arg(&new),
    );
    assert!(
        out.status.success(),
        "debootstrap of Debian {suite} failed: it needs the network (deb.debian.org) the first time; the root is cached in {} afterwards\n{}",
        work.display(),
        tail(&text(&out), 30)
    );
    // No init runs in the root: maintainer scripts must not try to start services.
    let policy = new.join("usr/sbin/policy-rc.d");
    std::fs::write(&policy, "#!/bin/sh\nexit 101\n").unwrap();
    run(
        "chmod policy-rc.d",
        Command::new("chmod").arg("755").arg(&policy),
    );
    std::fs::copy("/etc/resolv.conf", new.join("etc/resolv.conf"))
        .expect("copy the host's /etc/resolv.conf into the root (apt needs a resolver)");
    run(
        "apt-get update in the root (it needs the network)",
        in_root(&new, &[APT, &["update"]].concat()),
    );
    run(
        "apt-get install in the root (it needs the network)",
        in_root(&new, &[APT, &["install"], BASE_PACKAGES].concat()),
    );
    // The package lists stay (a run may need apt for dependencies); the downloaded .debs go.
    run(
        "apt-get clean in the root",
        in_root(&new, &["apt-get", "clean"]),
    );
    std::fs::write(new.join(".callpark-deb-test"), &recipe).unwrap();
    std::fs::rename(&new, &base).unwrap();
    eprintln!(
        "package test: made {} in {:.0} s",
        base.display(),
        t0.elapsed().as_secs_f64()
    );
    (base, lock)
}

/// This run's copy of the base root, removed when dropped (kept after a failure, for a look;
/// the next run removes it).
struct RunRoot(PathBuf);

impl RunRoot {
    fn new(work: &Path, base: &Path) -> RunRoot {
        // Roots of runs that died without cleaning up.
        for e in std::fs::read_dir(work).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("run-")
                && !Path::new("/proc").join(pid).exists()
            {
                run(
                    "removing a dead run's root",
                    Command::new("rm")
                        .arg("-rf")
                        .arg("--one-file-system")
                        .arg(e.path()),
                );
            }
        }
        let root = work.join(format!("run-{}", std::process::id()));
        run(
            "removing this run's old root",
            Command::new("rm")
                .arg("-rf")
                .arg("--one-file-system")
                .arg(&root),
        );
        run(
            "copying the base root",
            Command::new("cp").arg("-a").arg(base).arg(&root),
        );
        // The host's resolver of today, for apt fetching dependencies the root lacks.
        std::fs::copy("/etc/resolv.conf", root.join("etc/resolv.conf"))
            .expect("copy the host's /etc/resolv.conf into the root");
        RunRoot(root)
    }

    fn host(&self, path: &str) -> PathBuf {
        self.0.join(path.trim_start_matches('/'))
    }

    fn exists(&self, path: &str) -> bool {
        self.host(path).symlink_metadata().is_ok()
    }

    /// `owner:group mode type` as the root's own user database names them.
    fn stat(&self, path: &str) -> String {
        run(
            "stat in the root",
            in_root(&self.0, &["stat", "-c", "%U:%G %a %F", path]),
        )
        .trim()
        .to_string()
    }

    /// dpkg's state of the package: `install ok installed`, `deinstall ok config-files`...
    fn status(&self) -> String {
        let out = output(in_root(
            &self.0,
            &["dpkg-query", "-W", "-f", "${Status} ${Version}", "callpark"],
        ));
        if out.status.success() {
            String::from_utf8_lossy(&out.stdout).into_owned()
        } else {
            "not installed".into()
        }
    }

    /// `dpkg -i` of `deb` (copied into the root). When dpkg stops only at missing
    /// dependencies, apt installs them and finishes the configuration, as `apt-get -f install`
    /// does for an administrator.
    fn dpkg_install(&self, deb: &Path) {
        let name = deb.file_name().unwrap().to_str().unwrap();
        std::fs::copy(deb, self.host("/root").join(name)).unwrap();
        let inside = format!("/root/{name}");
        let out = output(in_root(&self.0, &["dpkg", "-i", &inside]));
        if !out.status.success() {
            let t = text(&out);
            assert!(
                t.contains("dependency problems") && !t.contains("script subprocess"),
                "dpkg -i {name} failed ({}):\n{t}",
                out.status
            );
            run(
                "apt-get -f install (the package's dependencies)",
                in_root(&self.0, &[APT, &["-f", "install"]].concat()),
            );
        }
    }

    /// The parked calls as `callpark parked --format json` run by the `callpark` user lists
    /// them.
    fn parked(&self) -> Vec<serde_json::Value> {
        let json = run(
            "callpark parked as the callpark user",
            as_callpark(&self.0, &["callpark", "parked", "--format", "json"]),
        );
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("callpark parked: {e}: {json}"))
    }
}

impl Drop for RunRoot {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "package test: the root is kept for a look: {}",
                self.0.display()
            );
            return;
        }
        let _ = Command::new("rm")
            .arg("-rf")
            .arg("--one-file-system")
            .arg(&self.0)
            .status();
    }
}

/// contrib/package.sh around the binary under test; the package's path.
fn build_package(out: &Path, version: Option<&str>) -> PathBuf {
    let mut cmd = Command::new("bash");
    // dpkg-deb's default xz takes half a minute on the binary; gzip -1 about a second.
    cmd.current_dir(REPO)
        .env("DPKG_DEB_COMPRESSOR_TYPE", "gzip")
        .env("DPKG_DEB_COMPRESSOR_LEVEL", "1")
        .arg("contrib/package.sh")
        .args(["--binary", env!("CARGO_BIN_EXE_callpark")])
        .arg("--out")
        .arg(out);
    if let Some(v) = version {
        cmd.args(["--version", v]);
    }
    let stdout = run("contrib/package.sh", &mut cmd);
    let deb = PathBuf::from(
        stdout
            .lines()
            .last()
            .expect("package.sh printed the package"),
    );
    assert!(
        deb.is_file(),
        "package.sh printed {deb:?}, which is no file"
    );
    deb
}

fn field(deb: &Path, name: &str) -> String {
    run(
        "dpkg-deb -f",
        Command::new("dpkg-deb").arg("-f").arg(deb).arg(name),
    )
    .trim()
    .to_string()
}

/// A store holding one parked call, made by callpark's own store code: the database file, the
/// write-ahead log copied into it.
async fn store_with_a_parked_call(dir: &Path) -> PathBuf {
    let path = dir.join("callpark.db");
    let store = Store::open(&path).await.unwrap();
    let now = 1_800_000_000_000;
    let call = ParkedCall {
        channel: ChannelId::new(CHANNEL),
        orbit: Some("701".parse().unwrap()),
        caller: Party {
            name: "Carol".into(),
            number: "5551234".into(),
        },
        parker: Parker {
            ids: vec!["alice".into()],
            endpoint: Some("PJSIP/alice".into()),
            display: "PJSIP/alice".into(),
        },
        lot: None,
        parked_at: now,
        deadline: now + 90_000,
        attempts: 0,
        fallback_tried: false,
        state: CallState::Parked,
        page: Default::default(),
    };
    store
        .apply("pbx-a", &[Change::Upsert(Box::new(call))], &[])
        .await
        .unwrap();
    store.close().await;
    // SQLite checkpoints and deletes the log when its last connection closes, on the
    // connection's own thread, which may finish after `close` returns (once, in a loaded CI
    // run, not within 10 s). Still there after 2 s, the log is folded into the database file
    // here, as that close would: the file copied alone then holds the call.
    let wal = dir.join("callpark.db-wal");
    for i in 0..200 {
        if !wal.exists() {
            return path;
        }
        if i == 40 {
            use sqlx::{Connection, Row};
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&mut c)
                .await
                .unwrap();
            let (busy, log, done): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
            c.close().await.unwrap();
            if busy == 0 && log == done {
                return path;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "{} is still there 10 s after the store closed, and could not be checkpointed",
        wal.display()
    );
}

fn holds_the_call(calls: &[serde_json::Value]) -> bool {
    calls.iter().any(|c| {
        c["channel"] == CHANNEL
            && c["pool"] == "pbx-a"
            && c["orbit"] == "701"
            && c["caller"]["number"] == "5551234"
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_package_installs_upgrades_keeping_the_store_and_purges() {
    let t0 = Instant::now();
    assert!(
        rustix::process::geteuid().is_root(),
        "the package test needs root: debootstrap, chroot and dpkg inside the root"
    );
    let work = PathBuf::from(
        std::env::var("CALLPARK_DEB_TEST_DIR")
            .unwrap_or_else(|_| "/var/tmp/callpark-deb-test".into()),
    );
    std::fs::create_dir_all(&work).unwrap();
    let suite = suite();
    let tmp = tempfile::tempdir().unwrap();

    // The package, and what dpkg will read of it.
    let deb = build_package(&tmp.path().join("v1"), None);
    let version = env!("CARGO_PKG_VERSION").replacen('-', "~", 1);
    assert_eq!(field(&deb, "Package"), "callpark");
    assert_eq!(field(&deb, "Version"), version);
    let depends = field(&deb, "Depends");
    assert!(
        depends.contains("libc6 (>= ") && depends.contains("adduser"),
        "Depends: {depends}"
    );
    step(t0, &format!("built {} (Depends: {depends})", deb.display()));

    let (base, lock) = base_root(&work, &suite);
    step(t0, &format!("base root {} ready", base.display()));
    let root = RunRoot::new(&work, &base);
    drop(lock);
    step(t0, &format!("copied it to {}", root.0.display()));

    // Install.
    root.dpkg_install(&deb);
    assert_eq!(root.status(), format!("install ok installed {version}"));
    step(t0, "dpkg -i");

    // Every file of the package, and nothing else.
    let listed = run(
        "dpkg -L callpark",
        in_root(&root.0, &["dpkg", "-L", "callpark"]),
    );
    let mut files: Vec<&str> = listed.lines().filter(|p| !root.host(p).is_dir()).collect();
    files.sort_unstable();
    let mut want: Vec<&str> = FILES.iter().map(|(p, _)| *p).collect();
    want.sort_unstable();
    assert_eq!(files, want, "the package's files");
    for (path, mode) in FILES.iter().chain([&STATE_DIR]) {
        assert_eq!(root.stat(path), *mode, "{path}");
    }
    assert_eq!(root.stat("/etc/callpark"), "root:root 755 directory");
    let conffiles = run(
        "dpkg-query Conffiles",
        in_root(
            &root.0,
            &["dpkg-query", "-W", "-f", "${Conffiles}", "callpark"],
        ),
    );
    for f in ["/etc/callpark/callpark.toml", "/etc/default/callpark"] {
        assert!(
            conffiles.contains(&format!(" {f} ")),
            "{f} is no conffile:{conffiles}"
        );
    }
    // The system user: a system id, no login, the state directory as home; its own group.
    let user = run(
        "getent passwd callpark",
        in_root(&root.0, &["getent", "passwd", "callpark"]),
    );
    let user: Vec<&str> = user.trim().split(':').collect();
    let uid: u32 = user[2].parse().unwrap();
    assert!(uid < 1000, "callpark's uid {uid} is not a system one");
    assert_eq!(user[5..], ["/var/lib/callpark", "/usr/sbin/nologin"]);
    let group = run(
        "getent group callpark",
        in_root(&root.0, &["getent", "group", "callpark"]),
    );
    assert_eq!(group.split(':').nth(2), Some(user[3]), "{group}");
    // The unit is the repository's, and the configuration the example made the installed one.
    assert_eq!(
        std::fs::read(root.host("/usr/lib/systemd/system/callpark.service")).unwrap(),
        std::fs::read(Path::new(REPO).join("contrib/callpark.service")).unwrap(),
        "the installed unit differs from contrib/callpark.service"
    );
    let config = std::fs::read_to_string(root.host("/etc/callpark/callpark.toml")).unwrap();
    assert!(
        config
            .lines()
            .any(|l| l.starts_with("data_dir = \"/var/lib/callpark\"")),
        "{config}"
    );
    assert!(
        !config.lines().any(|l| l.starts_with("[[policy]]")),
        "{config}"
    );
    step(
        t0,
        "every path, owner, group and mode; the user; the conffiles",
    );

    // systemd's own check of the unit, by the root's systemd: anything it prints (an unknown
    // key, a bad value, a missing binary) is a failure, though some only warn.
    let out = output(in_root(
        &root.0,
        &[
            "systemd-analyze",
            "verify",
            "/usr/lib/systemd/system/callpark.service",
        ],
    ));
    assert!(
        out.status.success() && text(&out).trim().is_empty(),
        "systemd-analyze verify callpark.service ({}):\n{}",
        out.status,
        text(&out)
    );
    step(t0, "systemd-analyze verify");

    // The callpark user checks the installed configuration (its default path); park is off.
    let check = run(
        "callpark check-config as the callpark user",
        as_callpark(&root.0, &["callpark", "check-config"]),
    );
    assert!(
        check.contains("/etc/callpark/callpark.toml: OK")
            && check.contains("warning: no [[policy]] enables call park"),
        "{check}"
    );
    step(t0, "callpark check-config as callpark");

    // A parked call in the store, the state directory's owner's file as the service leaves it.
    let made = tmp.path().join("store");
    std::fs::create_dir_all(&made).unwrap();
    let db = store_with_a_parked_call(&made).await;
    std::fs::copy(&db, root.host("/var/lib/callpark/callpark.db")).unwrap();
    run(
        "chown the store",
        in_root(
            &root.0,
            &[
                "chown",
                "callpark:callpark",
                "/var/lib/callpark/callpark.db",
            ],
        ),
    );
    assert!(
        holds_the_call(&root.parked()),
        "the call is not in the store"
    );
    // Local edits: the configuration, and a secret.
    let edit = "\n# a local edit the upgrade keeps\n";
    std::fs::write(
        root.host("/etc/callpark/callpark.toml"),
        format!("{config}{edit}"),
    )
    .unwrap();
    let secret = "CALLPARK_ARI_PASSWORD=kept-across-upgrades\n";
    let defaults = std::fs::read_to_string(root.host("/etc/default/callpark")).unwrap();
    std::fs::write(
        root.host("/etc/default/callpark"),
        format!("{defaults}{secret}"),
    )
    .unwrap();
    step(
        t0,
        "a parked call in the store; the configuration and the secrets edited",
    );

    // Upgrade to a rebuilt package.
    let newer = format!("{version}+1");
    let deb2 = build_package(&tmp.path().join("v2"), Some(&newer));
    root.dpkg_install(&deb2);
    assert_eq!(root.status(), format!("install ok installed {newer}"));
    let config_now = std::fs::read_to_string(root.host("/etc/callpark/callpark.toml")).unwrap();
    assert!(
        config_now.ends_with(edit),
        "the edit is gone:\n{config_now}"
    );
    assert!(
        std::fs::read_to_string(root.host("/etc/default/callpark"))
            .unwrap()
            .ends_with(secret),
        "the secret is gone"
    );
    for f in ["/etc/callpark/callpark.toml", "/etc/default/callpark"] {
        for suffix in [".dpkg-dist", ".dpkg-new", ".dpkg-old"] {
            assert!(
                !root.exists(&format!("{f}{suffix}")),
                "{f}{suffix} after the upgrade"
            );
        }
    }
    for (path, mode) in FILES.iter().chain([&STATE_DIR]) {
        assert_eq!(root.stat(path), *mode, "{path} after the upgrade");
    }
    assert!(
        holds_the_call(&root.parked()),
        "the parked call is gone after the upgrade"
    );
    run(
        "callpark check-config as callpark after the upgrade",
        as_callpark(&root.0, &["callpark", "check-config"]),
    );
    step(
        t0,
        "upgraded: configuration, secrets and the parked call kept",
    );

    // Remove: the binary and the unit go; configuration, secrets and store stay.
    run("dpkg -r", in_root(&root.0, &["dpkg", "-r", "callpark"]));
    assert_eq!(root.status(), format!("deinstall ok config-files {newer}"));
    for gone in [
        "/usr/bin/callpark",
        "/usr/lib/systemd/system/callpark.service",
    ] {
        assert!(!root.exists(gone), "{gone} after dpkg -r");
    }
    for kept in [
        "/etc/callpark/callpark.toml",
        "/etc/default/callpark",
        "/var/lib/callpark/callpark.db",
    ] {
        assert!(root.exists(kept), "{kept} is gone after dpkg -r");
    }
    assert_eq!(root.stat(STATE_DIR.0), STATE_DIR.1);
    step(t0, "dpkg -r kept configuration and store");

    // Purge: everything of the package goes but the user.
    run(
        "dpkg --purge",
        in_root(&root.0, &["dpkg", "--purge", "callpark"]),
    );
    assert_eq!(root.status(), "not installed");
    for gone in [
        "/etc/callpark",
        "/etc/default/callpark",
        "/var/lib/callpark",
    ] {
        assert!(!root.exists(gone), "{gone} after dpkg --purge");
    }
    // `--list PATH` fails when PATH has no override.
    let left = output(in_root(
        &root.0,
        &["dpkg-statoverride", "--list", "/etc/default/callpark"],
    ));
    assert!(
        !left.status.success() && left.stdout.is_empty(),
        "the statoverride outlived the purge: {}",
        text(&left)
    );
    step(t0, "dpkg --purge removed configuration and store");
}
