//! `callpark setup` on configurations nobody here wrote: FreeSWITCH's own vanilla
//! configuration (the bundle's `conf-vanilla`, run as a FreeSWITCH of its own beside the
//! testbed) and Debian's stock Asterisk configuration (the testbed chroot's
//! `/etc/asterisk.dist`, run as a second Asterisk in the chroot). Each is set up with `--yes`,
//! must then pass the doctor, must not change on a second run, and must park a call.

use callpark_testkit as support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use support::fs::fb;
use support::*;

const SECRET_VAR: &str = "CALLPARK_SETUP_TEST_SECRET";

fn run_callpark(config: &Path, args: &[&str], secret: &str) -> Output {
    Command::new(bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .env(SECRET_VAR, secret)
        .stdin(Stdio::null())
        .output()
        .expect("run callpark")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `callpark run` as a process, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_callpark(config: &Path, secret: &str, log: &Path) -> Running {
    let log = std::fs::File::create(log).unwrap();
    Running(
        Command::new(bin())
            .arg("--config")
            .arg(config)
            .arg("run")
            .env(SECRET_VAR, secret)
            .env("CALLPARK_LOG", "callpark=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start callpark run"),
    )
}

/// The calls parked now, from `callpark parked --format json`: (orbit, channel) pairs.
fn parked(config: &Path, secret: &str) -> Vec<(String, String)> {
    let o = run_callpark(config, &["parked", "--format", "json"], secret);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["orbit"].as_str().unwrap_or_default().to_string(),
                c["channel"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// A FreeSWITCH of its own with the vanilla configuration (event socket 127.0.0.1:8021,
/// password ClueCon), from the testbed's build; stopped when dropped.
struct VanillaFs {
    build: PathBuf,
    child: Child,
}

impl VanillaFs {
    async fn start(dir: &Path) -> VanillaFs {
        // The testbed finds (and unpacks) the build; it is up for the other FreeSWITCH tests.
        support::fs::fs_testbed().await;
        let build = PathBuf::from(
            std::fs::read_to_string(Path::new(&fb("ROOT")).join("build"))
                .unwrap()
                .trim(),
        );
        let conf = dir.join("conf");
        let cp = Command::new("cp")
            .arg("-a")
            .arg(build.join("conf-vanilla"))
            .arg(&conf)
            .status()
            .unwrap();
        assert!(cp.success());
        // The one change to the vanilla configuration: its external addresses come from a STUN
        // lookup of stun.freeswitch.org while the configuration is read, which holds the start
        // up for as long as DNS takes to fail on a machine without the internet (past a minute
        // in one CI run). Everything here is on 127.0.0.1.
        let vars = conf.join("vars.xml");
        let text = std::fs::read_to_string(&vars).unwrap();
        let local = text
            .replace(
                r#"cmd="stun-set" data="external_rtp_ip=stun:stun.freeswitch.org""#,
                r#"cmd="set" data="external_rtp_ip=127.0.0.1""#,
            )
            .replace(
                r#"cmd="stun-set" data="external_sip_ip=stun:stun.freeswitch.org""#,
                r#"cmd="set" data="external_sip_ip=127.0.0.1""#,
            );
        assert!(
            !local.contains("stun:stun.freeswitch.org\"") && local != text,
            "conf-vanilla's vars.xml no longer has the STUN lookups this test replaces"
        );
        std::fs::write(&vars, local).unwrap();
        for d in ["log", "db", "run", "storage", "temp", "cache", "recordings"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let arg = |d: &str| dir.join(d).display().to_string();
        let child = Command::new(build.join("bin/freeswitch"))
            .env("LD_LIBRARY_PATH", build.join("lib"))
            .args(["-nonat", "-nc", "-nf", "-u", "root", "-g", "root"])
            .args([
                "-base",
                &arg(""),
                "-conf",
                &arg("conf"),
                "-log",
                &arg("log"),
            ])
            .args([
                "-db",
                &arg("db"),
                "-run",
                &arg("run"),
                "-storage",
                &arg("storage"),
            ])
            .args(["-temp", &arg("temp"), "-cache", &arg("cache")])
            .args(["-recordings", &arg("recordings")])
            .arg("-mod")
            .arg(build.join("mod"))
            // The testbed's prompts and music: the bundle has no sound files.
            .arg("-sounds")
            .arg(Path::new(&fb("ROOT")).join("run/sounds"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the vanilla FreeSWITCH");
        let fs = VanillaFs { build, child };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !fs.api("ClueCon", "status").contains("is ready") {
            if std::time::Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(dir.join("log/freeswitch.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                panic!(
                    "the vanilla FreeSWITCH's event socket did not answer in 60 s; its log ends:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        fs
    }

    fn api(&self, password: &str, cmd: &str) -> String {
        let o = Command::new(self.build.join("bin/fs_cli"))
            .env("LD_LIBRARY_PATH", self.build.join("lib"))
            .args(["-H", "127.0.0.1", "-P", "8021", "-p", password, "-x", cmd])
            .output()
            .expect("fs_cli");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for VanillaFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn setup_freeswitch_on_the_vanilla_configuration_then_parks_a_call() {
    let _turn = exclusive_of("freeswitch").await;
    let dir = tempfile::tempdir().unwrap();
    let fs = VanillaFs::start(dir.path()).await;
    let secret = "setup-test-secret";
    let config = dir.path().join("callpark.toml");
    std::fs::write(
        &config,
        format!(
            "[service]\ndata_dir = \"{}\"\n\n[park]\npickup_timeout = \"10m\"\n\n\
             [[policy]]\nname = \"everyone\"\nenable_call_park = true\npatterns = [\".*\"]\n\n\
             [[pbx]]\nname = \"vanilla\"\nkind = \"freeswitch\"\naddress = \"127.0.0.1:8021\"\npassword_env = \"{SECRET_VAR}\"\n\n\
             [[orbit_range]]\nname = \"main\"\nfirst = \"7101\"\nlast = \"7199\"\npool = \"vanilla\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let conf = dir.path().join("conf");
    let default_xml = conf.join("dialplan/default.xml");
    let before = std::fs::read_to_string(&default_xml).unwrap();

    let o = run_callpark(
        &config,
        &[
            "setup",
            "freeswitch",
            "--conf",
            conf.to_str().unwrap(),
            "--yes",
        ],
        secret,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let after = std::fs::read_to_string(&default_xml).unwrap();
    assert_ne!(before, after);
    assert!(
        after.contains("<X-PRE-PROCESS cmd=\"include\" data=\"callpark/callpark.xml\"/>"),
        "{after}"
    );
    assert!(conf.join("dialplan/callpark/callpark.xml").is_file());
    // The event socket now takes callpark's secret, not the vanilla one.
    assert!(
        fs.api(secret, "status").contains("is ready"),
        "{}",
        text(&o)
    );

    // A second run finds nothing to change.
    let o = run_callpark(
        &config,
        &[
            "setup",
            "freeswitch",
            "--conf",
            conf.to_str().unwrap(),
            "--yes",
        ],
        secret,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(&default_xml).unwrap(), after);

    // And a call dialling the park code is parked.
    let log = dir.path().join("callpark.log");
    let _cp = start_callpark(&config, secret, &log);
    wait_for(
        "callpark connected to the vanilla FreeSWITCH",
        Duration::from_secs(30),
        || async {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("connected to FreeSWITCH")
                .then_some(())
        },
    )
    .await;
    let r = fs.api(
        secret,
        "originate {origination_caller_id_number=1001}loopback/park/default &park()",
    );
    assert!(r.starts_with("+OK"), "{r}");
    let calls = wait_for("the call parked", Duration::from_secs(20), || async {
        let p = parked(&config, secret);
        (!p.is_empty()).then_some(p)
    })
    .await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].0, "7101", "{calls:?}");
    fs.api(secret, "hupall");
}

/// A second Asterisk in the testbed's chroot, run from a copy of Debian's stock configuration
/// (`/etc/asterisk.dist`, kept by testbed.sh before it puts the testbed's files in place) in
/// `/etc/asterisk-stock`. Only its asterisk.conf differs from stock: the directories of its
/// own (control socket, database, logs), so it runs beside the testbed's Asterisk. A second
/// Asterisk that could not start would leave `asterisk -rx` talking to the testbed's: the
/// control socket is checked to be this one's.
struct StockAsterisk {
    root: PathBuf,
    child: Child,
}

const STOCK_CONF: &str = "/etc/asterisk-stock/asterisk.conf";

impl StockAsterisk {
    async fn start() -> StockAsterisk {
        support::testbed().await;
        let root = PathBuf::from(tb("ROOT"));
        let etc = root.join("etc/asterisk-stock");
        let _ = std::fs::remove_dir_all(&etc);
        let cp = Command::new("cp")
            .arg("-a")
            .arg(root.join("etc/asterisk.dist"))
            .arg(&etc)
            .status()
            .unwrap();
        assert!(cp.success());
        let conf = std::fs::read_to_string(etc.join("asterisk.conf")).unwrap();
        let mut own = String::new();
        for line in conf.lines() {
            // Stock asterisk.conf marks [directories] a template, `(!)`, which Asterisk
            // ignores (its sample says to remove the mark to use the section).
            let line = line.replace("[directories](!)", "[directories]");
            let l = match line.split_once("=>").map(|(k, _)| k.trim()) {
                Some("astetcdir") => "astetcdir => /etc/asterisk-stock".to_string(),
                Some(
                    k @ ("astrundir" | "astlogdir" | "astspooldir" | "astdbdir" | "astcachedir"),
                ) => {
                    let d = format!("/var/tmp/asterisk-stock/{k}");
                    std::fs::create_dir_all(root.join(&d[1..])).unwrap();
                    format!("{k} => {d}")
                }
                _ => line,
            };
            own.push_str(&l);
            own.push('\n');
        }
        std::fs::write(etc.join("asterisk.conf"), own).unwrap();
        let console =
            std::fs::File::create(root.join("var/tmp/asterisk-stock/console.log")).unwrap();
        let child = Command::new("setsid")
            .arg("chroot")
            .arg(&root)
            .args([
                "/usr/bin/env",
                "-i",
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME=/root",
            ])
            .args([
                "/usr/sbin/asterisk",
                "-C",
                STOCK_CONF,
                "-f",
                "-n",
                "-U",
                "root",
                "-G",
                "root",
            ])
            .stdin(Stdio::null())
            .stdout(console.try_clone().unwrap())
            .stderr(console)
            .spawn()
            .expect("start the stock Asterisk");
        let a = StockAsterisk { root, child };
        let ctl = a.root.join("var/tmp/asterisk-stock/astrundir/asterisk.ctl");
        wait_for("the stock Asterisk", Duration::from_secs(60), || async {
            (ctl.exists() && a.cli("core show version").contains("Asterisk")).then_some(())
        })
        .await;
        a
    }

    /// The reload command `callpark setup asterisk` is given: this Asterisk's CLI.
    fn reload_command(&self) -> String {
        format!(
            "chroot {} /usr/sbin/asterisk -C {STOCK_CONF} -rx 'core reload'",
            self.root.display()
        )
    }

    fn cli(&self, cmd: &str) -> String {
        let o = Command::new("chroot")
            .arg(&self.root)
            .args(["/usr/sbin/asterisk", "-C", STOCK_CONF, "-rx", cmd])
            .output()
            .expect("asterisk -rx");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for StockAsterisk {
    fn drop(&mut self) {
        // Only through its own control socket: never the testbed's.
        if self
            .root
            .join("var/tmp/asterisk-stock/astrundir/asterisk.ctl")
            .exists()
        {
            self.cli("core stop now");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(self.root.join("etc/asterisk-stock"));
    }
}

#[tokio::test]
async fn setup_asterisk_on_debians_stock_configuration_then_parks_a_call() {
    let _turn = exclusive_of("asterisk").await;
    let ast = StockAsterisk::start().await;
    let dir = tempfile::tempdir().unwrap();
    let secret = "setup-test-ari-secret";
    let config = dir.path().join("callpark.toml");
    std::fs::write(
        &config,
        format!(
            "[service]\ndata_dir = \"{}\"\n\n[park]\npickup_timeout = \"10m\"\n\n\
             [[policy]]\nname = \"everyone\"\nenable_call_park = true\npatterns = [\".*\"]\n\n\
             [[pbx]]\nname = \"stock\"\nkind = \"asterisk\"\naddress = \"http://127.0.0.1:8288\"\nusername = \"callpark\"\npassword_env = \"{SECRET_VAR}\"\n\n\
             [[orbit_range]]\nname = \"main\"\nfirst = \"7101\"\nlast = \"7199\"\npool = \"stock\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let etc = ast.root.join("etc/asterisk-stock");
    let setup = [
        "setup",
        "asterisk",
        "--etc",
        etc.to_str().unwrap(),
        "--context",
        "default",
        "--yes",
        "--reload-command",
        &ast.reload_command(),
    ];
    let o = run_callpark(&config, &setup, secret);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let ext = std::fs::read_to_string(etc.join("extensions.conf")).unwrap();
    assert!(ext.contains("#include callpark.conf"), "{ext}");
    // Stock [default] includes [demo], whose _7XXX pages: callpark's orbits must come first.
    let default = &ext[ext.find("\n[default]").unwrap()..];
    let (cp, demo) = (
        default.find("include => callpark").unwrap(),
        default.find("include => demo").unwrap(),
    );
    assert!(cp < demo, "{default}");
    let files: Vec<String> = ["extensions.conf", "http.conf", "ari.conf"]
        .iter()
        .map(|f| std::fs::read_to_string(etc.join(f)).unwrap())
        .collect();

    let o = run_callpark(&config, &setup, secret);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for (f, before) in ["extensions.conf", "http.conf", "ari.conf"]
        .iter()
        .zip(&files)
    {
        assert_eq!(
            &std::fs::read_to_string(etc.join(f)).unwrap(),
            before,
            "{f}"
        );
    }

    let log = dir.path().join("callpark.log");
    let _cp = start_callpark(&config, secret, &log);
    wait_for(
        "callpark connected to the stock Asterisk",
        Duration::from_secs(30),
        || async {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("connected to ARI")
                .then_some(())
        },
    )
    .await;
    // A local call dials the park code from [default]; its other half runs the echo test.
    let client = reqwest::Client::new();
    let r = client
        .post("http://127.0.0.1:8288/ari/channels")
        .basic_auth("callpark", Some(secret))
        .query(&[
            ("endpoint", "Local/park@default"),
            ("context", "demo"),
            ("extension", "600"),
            ("priority", "1"),
            ("callerId", "Stock <1001>"),
        ])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);
    let calls = wait_for("the call parked", Duration::from_secs(20), || async {
        let p = parked(&config, secret);
        (!p.is_empty()).then_some(p)
    })
    .await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].0, "7101", "{calls:?}");
    ast.cli("channel request hangup all");
}
