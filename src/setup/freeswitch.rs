//! `callpark setup freeswitch`: the include file, the preprocessor line that includes it at
//! the top of the phones' context, and the event socket, as README.md's "Use with your
//! FreeSWITCH" asks for them.
//!
//! The include is written as `dialplan/callpark/callpark.xml`: not in `dialplan/` itself,
//! whose `*.xml` the vanilla freeswitch.xml includes at the level of the dialplan section
//! (outside any context), and not in `dialplan/default/`, whose `*.xml` the vanilla
//! default.xml includes once more near the end of its context.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

use super::fsxml;
use super::{BadInput, Plan};
use crate::config::{Config, PbxConfig, PbxKind};

/// The include file, relative to the configuration directory.
pub const INCLUDE: &str = "dialplan/callpark/callpark.xml";

/// The event socket's settings file, relative to the configuration directory.
pub const EVENT_SOCKET: &str = "autoload_configs/event_socket.conf.xml";

/// mod_event_socket's defaults, for a file that leaves a param out.
const DEFAULT_PORT: u16 = 8021;
const DEFAULT_IP: &str = "127.0.0.1";
const DEFAULT_PASSWORD: &str = "ClueCon";

/// What `callpark setup freeswitch` is told.
#[derive(Debug, Clone)]
pub struct Options {
    pub pool: Option<String>,
    /// FreeSWITCH's configuration directory.
    pub conf: PathBuf,
    /// The dialplan context the phones dial from.
    pub context: String,
}

/// The event socket as it listens: before setup changes it, and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    /// Where to reach it (`HOST:PORT`).
    pub address: String,
    pub password: String,
}

/// A FreeSWITCH plan and what the reload needs.
#[derive(Debug, Clone)]
pub struct FsPlan {
    pub plan: Plan,
    /// The socket as the file set it before the change: where the reload commands go.
    pub before: Socket,
    /// The socket as setup leaves it.
    pub after: Socket,
    /// Whether event_socket.conf.xml changes (then mod_event_socket is reloaded).
    pub event_socket_changed: bool,
}

/// `HOST` and `PORT` of an event-socket address (`127.0.0.1:8021`, `[::1]:8021`).
pub fn host_port(cfg: &Config, pbx: &PbxConfig) -> Result<(String, u16), BadInput> {
    let addr = pbx.address.trim();
    match addr.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => {
            Ok((super::bind_host(h), p.parse().unwrap_or(DEFAULT_PORT)))
        }
        _ => Err(BadInput::at(
            &super::config_file(cfg),
            super::pbx_line(cfg, pbx, "address"),
            format!(
                "[[pbx]] {}: address `{addr}` must be the event socket as HOST:PORT, like 127.0.0.1:8021",
                pbx.name
            ),
        )),
    }
}

/// `host:port`, bracketed when the host is an IPv6 address.
fn join(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The preprocessor's variables as the files set them (`<X-PRE-PROCESS cmd="set"
/// data="name=value"/>`, in the order FreeSWITCH reads `texts`): what `$${name}` in
/// event_socket.conf.xml stands for. A value naming a variable set only at run time
/// (`$${local_ip_v4}`) stays unexpanded.
pub fn preprocessor_vars(texts: &[&str]) -> HashMap<String, String> {
    static SET: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r#"(?i)<X-PRE-PROCESS\s+cmd\s*=\s*"set"\s+data\s*=\s*"\s*([^"=]+?)\s*=\s*([^"]*)""#,
        )
        .expect("set regex")
    });
    let mut vars = HashMap::new();
    for t in texts {
        for c in SET.captures_iter(t) {
            let v = expand(&c[2], &vars).unwrap_or_else(|| c[2].to_string());
            vars.insert(c[1].to_string(), v);
        }
    }
    vars
}

/// `value` with its `$${name}` expanded; `None` while one cannot be.
fn expand(value: &str, vars: &HashMap<String, String>) -> Option<String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find("$${") {
        let end = rest[i..].find('}')? + i;
        out.push_str(&rest[..i]);
        out.push_str(vars.get(&rest[i + 3..end])?);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// event_socket.conf.xml made to listen at `host:port` with `password`: `listen-ip` is kept
/// when it already covers `host` (`::`, `0.0.0.0`), and a value written as a variable is kept
/// when it stands for the right one. Returns the new text, and the socket as the old text
/// has it (where to send the reload), reached from `host` when it covered it.
pub fn edit_event_socket(
    path: &Path,
    text: &str,
    vars: &HashMap<String, String>,
    host: &str,
    port: u16,
    password: &str,
) -> Result<(String, Socket), BadInput> {
    // What a param stands for: mod_event_socket's default when it is absent, `None` when it
    // names a variable that cannot be known here.
    let value = |name: &str, default: &str| match fsxml::param(text, name) {
        Some(v) => expand(&v, vars),
        None => Some(default.to_string()),
    };
    let old_ip = value("listen-ip", DEFAULT_IP);
    let old_port =
        value("listen-port", &DEFAULT_PORT.to_string()).and_then(|p| p.trim().parse::<u16>().ok());
    let old_password = value("password", DEFAULT_PASSWORD);
    let covered = old_ip.as_deref().is_some_and(|ip| super::covers(ip, host));
    let reach = match &old_ip {
        Some(ip)
            if !covered
                && ip
                    .trim()
                    .trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok() =>
        {
            ip.trim().trim_matches(['[', ']']).to_string()
        }
        _ => host.to_string(),
    };
    let before = Socket {
        address: join(&reach, old_port.unwrap_or(port)),
        password: old_password.clone().unwrap_or_default(),
    };
    let no_settings = || {
        BadInput::at(
            path,
            None,
            "has no <settings> element: restore it from FreeSWITCH's vanilla configuration (conf/vanilla/autoload_configs/event_socket.conf.xml) and run setup again",
        )
    };
    let mut t = text.to_string();
    if !covered {
        t = fsxml::set_param(&t, "listen-ip", host).ok_or_else(no_settings)?;
    }
    // An absent port is written out even when the default is right: the file then says
    // where callpark connects.
    if old_port != Some(port) || fsxml::param(&t, "listen-port").is_none() {
        t = fsxml::set_param(&t, "listen-port", &port.to_string()).ok_or_else(no_settings)?;
    }
    if old_password.as_deref() != Some(password) {
        t = fsxml::set_param(&t, "password", password).ok_or_else(no_settings)?;
    }
    Ok((t, before))
}

/// The preprocessor line that includes `data`.
pub fn include_line(data: &str) -> String {
    format!("<X-PRE-PROCESS cmd=\"include\" data=\"{data}\"/>")
}

/// Every change `callpark setup freeswitch` would make.
pub fn plan(cfg: &Config, opts: &Options) -> Result<FsPlan, BadInput> {
    let pbx = super::pick_pool(cfg, opts.pool.as_deref(), PbxKind::Freeswitch)?;
    let secret = super::secret(cfg, pbx)?;
    let (host, port) = host_port(cfg, pbx)?;
    let conf = &opts.conf;
    let mut plan = Plan {
        pool: pbx.name.clone(),
        contexts: vec![opts.context.clone()],
        ..Plan::default()
    };

    // The dialplan file that defines the context (the first one, as FreeSWITCH reads them).
    let dir = conf.join("dialplan");
    let mut files = list_xml(&dir)?;
    files.sort();
    let mut found = None;
    for f in &files {
        let text = super::read(f)?.unwrap_or_default();
        if let Some(at) = fsxml::find_context(&text, &opts.context) {
            found = Some((f.clone(), text, at));
            break;
        }
    }
    let Some((file, text, at)) = found else {
        return Err(BadInput::at(
            &dir.join("*.xml"),
            None,
            format!(
                "no file defines <context name=\"{}\">: name the context your phones dial from with --context (their user_context in the directory)",
                opts.context
            ),
        ));
    };
    // FreeSWITCH's preprocessor resolves an include's relative path against the directory of
    // the file that holds it (signalwire/freeswitch src/switch_xml.c: preprocess_glob()
    // prefixes a relative pattern with `cwd`, and passes each matched file's own directory as
    // the `cwd` of its preprocess()): from dialplan/default.xml, `callpark/callpark.xml`.
    let include = conf.join(INCLUDE);
    let data = include.strip_prefix(&dir).map_or_else(
        |_| include.display().to_string(),
        |p| p.display().to_string(),
    );
    let included = fsxml::includes(&text, at.open.end, at.close);
    let present = included
        .iter()
        .any(|d| d == &data || dir.join(d) == include);
    // README.md's manual steps write dialplan/default/00_callpark.xml: with a second include
    // of callpark's extensions, both would be hunted, a stale one perhaps first.
    for d in included
        .iter()
        .filter(|d| *d != &data && d.contains("callpark"))
    {
        plan.notes.push(format!(
            "context {}: {} also includes {d}, an earlier callpark include? Remove that line (and file): {data} replaces it",
            opts.context,
            file.display()
        ));
    }

    let old = super::read(&include)?;
    plan.change(
        &include,
        old,
        crate::pbx::freeswitch::dialplan::generate(cfg, &pbx.name),
        &[],
    );
    if present {
        plan.notes.push(format!(
            "context {}: {} includes {data} already",
            opts.context,
            file.display()
        ));
    } else {
        let new = fsxml::insert_first(&text, &at, &include_line(&data));
        plan.change(&file, Some(text), new, &[]);
    }

    let es = conf.join(EVENT_SOCKET);
    let old = super::read(&es)?.ok_or_else(|| {
        BadInput::at(
            &es,
            None,
            "not found: is --conf FreeSWITCH's configuration directory (the one holding freeswitch.xml)?",
        )
    })?;
    // vars.xml is included by freeswitch.xml before anything else: its sets come first.
    let mut texts = Vec::new();
    for f in ["vars.xml", "freeswitch.xml"] {
        texts.push(super::read(&conf.join(f))?.unwrap_or_default());
    }
    let vars = preprocessor_vars(&texts.iter().map(String::as_str).collect::<Vec<_>>());
    let (new, before) = edit_event_socket(&es, &old, &vars, &host, port, &secret)?;
    let event_socket_changed = new != old;
    let secrets = vec![secret.clone(), before.password.clone()];
    plan.change(&es, Some(old), new, &secrets);
    Ok(FsPlan {
        plan,
        before,
        after: Socket {
            address: join(&host, port),
            password: secret,
        },
        event_socket_changed,
    })
}

/// The `*.xml` files of `dir` (none when it does not exist).
fn list_xml(dir: &Path) -> Result<Vec<PathBuf>, BadInput> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(BadInput::at(
                dir,
                None,
                format!(
                    "cannot list it ({e}): run setup as a user who can (root, or FreeSWITCH's own user)"
                ),
            ));
        }
    };
    Ok(entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml") && p.is_file())
        .collect())
}
