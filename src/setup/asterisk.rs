//! `callpark setup asterisk`: the include file, extensions.conf, http.conf and ari.conf, as
//! README.md's "Use with your Asterisk" asks for them.

use std::path::{Path, PathBuf};

use super::extensions::{self, File, Origin};
use super::ini::{Conf, ast_false, ast_true};
use super::{BadInput, Plan};
use crate::config::{Config, PbxConfig, PbxKind};

/// The variables callpark reads from every channel of an ARI event (who parked), so that a
/// park needs no REST round trip to learn them.
pub const CHANNELVARS: [&str; 3] = ["BLINDTRANSFER", "ATTENDEDTRANSFER", "FORWARDERNAME"];

/// What `callpark setup asterisk` is told.
#[derive(Debug, Clone)]
pub struct Options {
    /// The pool; the first Asterisk `[[pbx]]` when `None`.
    pub pool: Option<String>,
    /// Asterisk's configuration directory.
    pub etc: PathBuf,
    /// The contexts the phones dial from; found in pjsip.conf when empty.
    pub contexts: Vec<String>,
}

/// Where ARI must listen: from the `[[pbx]]` address, `http://HOST:PORT[/PREFIX]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub host: String,
    pub port: u16,
    /// http.conf's `prefix`: the path of the address, without slashes (usually empty).
    pub prefix: String,
}

/// The address of an Asterisk `[[pbx]]` as http.conf spells it.
pub fn listen(cfg: &Config, pbx: &PbxConfig) -> Result<Listen, BadInput> {
    let file = super::config_file(cfg);
    let line = super::pbx_line(cfg, pbx, "address");
    let bad = |why: &str| {
        BadInput::at(
            &file,
            line,
            format!(
                "[[pbx]] {}: address `{}` {why}",
                pbx.name,
                pbx.address.trim()
            ),
        )
    };
    let url = reqwest::Url::parse(pbx.address.trim()).map_err(|e| {
        bad(&format!(
            "is not a URL ({e}): write it like http://127.0.0.1:8088"
        ))
    })?;
    if url.scheme() != "http" {
        return Err(bad(
            "is not plain http://: setup writes only http.conf's plain HTTP server; set up TLS (tlsenable, tlsbindaddr, tlscertfile) by hand, or use http:// on loopback",
        ));
    }
    let host = super::bind_host(url.host_str().unwrap_or(""));
    if host.parse::<std::net::IpAddr>().is_err() {
        return Err(bad(
            "does not name an IP address, which http.conf's bindaddr needs: write the address with one (http://127.0.0.1:8088)",
        ));
    }
    Ok(Listen {
        host,
        port: url.port_or_known_default().unwrap_or(80),
        prefix: url.path().trim_matches('/').to_string(),
    })
}

/// http.conf: the HTTP server on, bound where callpark reaches it. A wildcard `bindaddr`
/// (`0.0.0.0`, `::`) that covers the address is kept: the administrator opened it on purpose.
pub fn edit_http(text: &str, l: &Listen) -> String {
    let mut c = Conf::parse(text);
    c.ensure("general", "enabled", ast_true, "yes");
    c.ensure(
        "general",
        "bindaddr",
        |v| super::covers(v, &l.host),
        &l.host,
    );
    let port = l.port.to_string();
    c.ensure("general", "bindport", |v| v.trim() == port, &port);
    let has_prefix = c.section("general").and_then(|s| {
        c.get(&s, "prefix")
            .map(|(_, v)| v.trim_matches('/').to_string())
    });
    // Asterisk serves ARI under the prefix: only a prefix that differs from the address's
    // path is written (an absent one and an empty one are the same).
    if has_prefix.is_some() || !l.prefix.is_empty() {
        c.ensure(
            "general",
            "prefix",
            |v| v.trim_matches('/') == l.prefix,
            &l.prefix,
        );
    }
    c.text()
}

/// ari.conf: ARI on, the channel variables callpark reads (added to any already listed), and
/// the user callpark logs in as, with its secret in plain text.
pub fn edit_ari(text: &str, user: &str, secret: &str) -> String {
    let mut c = Conf::parse(text);
    c.ensure("general", "enabled", ast_true, "yes");
    let listed: Vec<String> = c
        .section("general")
        .and_then(|s| c.get(&s, "channelvars").map(|(_, v)| v.to_string()))
        .map(|v| {
            v.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default();
    // Exact names: ARI reports each variable under the name listed here, and callpark looks
    // them up by exactly these.
    let mut merged = listed.clone();
    for v in CHANNELVARS {
        if !merged.iter().any(|x| x == v) {
            merged.push(v.to_string());
        }
    }
    let joined = merged.join(",");
    c.ensure(
        "general",
        "channelvars",
        |_| merged.len() == listed.len(),
        &joined,
    );
    if c.section(user).is_none() {
        c.append(&[
            format!("[{user}]"),
            "type = user".into(),
            "read_only = no".into(),
            format!("password = {}", secret.replace(';', "\\;")),
        ]);
        return c.text();
    }
    c.ensure(user, "type", |v| v.eq_ignore_ascii_case("user"), "user");
    c.ensure(user, "read_only", ast_false, "no");
    c.set(user, "password", secret);
    // A crypt(3) hash cannot be compared with the secret: the plain secret replaces it.
    let format = c
        .section(user)
        .and_then(|s| c.get(&s, "password_format").map(|(_, v)| v.to_string()));
    if format.is_some_and(|f| !f.eq_ignore_ascii_case("plain")) {
        c.set(user, "password_format", "plain");
    }
    c.text()
}

/// Every change `callpark setup asterisk` would make.
pub fn plan(cfg: &Config, opts: &Options) -> Result<Plan, BadInput> {
    let pbx = super::pick_pool(cfg, opts.pool.as_deref(), PbxKind::Asterisk)?;
    let user = pbx.username.clone().ok_or_else(|| {
        BadInput::at(
            &super::config_file(cfg),
            super::pbx_line(cfg, pbx, "name"),
            format!(
                "[[pbx]] {} has no username (the ari.conf user callpark logs in as): add username = \"callpark\"",
                pbx.name
            ),
        )
    })?;
    let secret = super::secret(cfg, pbx)?;
    let listen = listen(cfg, pbx)?;
    let etc = &opts.etc;
    let include = etc.join("callpark.conf");
    let mut plan = Plan {
        pool: pbx.name.clone(),
        ..Plan::default()
    };

    let old = super::read(&include)?;
    plan.change(
        &include,
        old,
        crate::pbx::asterisk::dialplan::generate(cfg, &pbx.name),
        &[],
    );

    let dialplan = extensions::read_with_includes(etc, "extensions.conf", &include)?;
    let contexts = contexts(etc, &dialplan, &opts.contexts, &mut plan.notes)?;
    plan.contexts = contexts.iter().map(|(c, _)| c.clone()).collect();
    for ((path, new), f) in extensions::edit(&dialplan, etc, &include, &contexts)?
        .into_iter()
        .zip(&dialplan)
    {
        plan.change(&path, Some(f.text.clone()), new, &[]);
    }

    let http = etc.join("http.conf");
    let old = super::read(&http)?;
    let new = edit_http(old.as_deref().unwrap_or(""), &listen);
    plan.change(&http, old, new, &[]);

    let ari = etc.join("ari.conf");
    let old = super::read(&ari)?;
    let new = edit_ari(old.as_deref().unwrap_or(""), &user, &secret);
    let mut secrets = vec![secret.clone()];
    if let Some(o) = &old {
        // The password the file held before, which the diff must not show either.
        let c = Conf::parse(o);
        if let Some(p) = c
            .section(&user)
            .and_then(|s| c.get(&s, "password").map(|(_, v)| v.to_string()))
        {
            secrets.push(p);
        }
    }
    plan.change(&ari, old, new, &secrets);
    Ok(plan)
}

/// The phone contexts: as given, else those of pjsip.conf's phone endpoints, else
/// `from-internal` and `default` where the dial plan has them.
fn contexts(
    etc: &Path,
    dialplan: &[File],
    given: &[String],
    notes: &mut Vec<String>,
) -> Result<Vec<(String, Option<Origin>)>, BadInput> {
    if !given.is_empty() {
        return Ok(given.iter().map(|c| (c.clone(), None)).collect());
    }
    let pjsip = extensions::read_with_includes(etc, "pjsip.conf", Path::new(""))?;
    let (found, trunks) = extensions::phone_contexts(&pjsip);
    notes.extend(trunks);
    if !found.is_empty() {
        for (c, o) in &found {
            notes.push(format!(
                "context {c}: {} dials from it ({}:{})",
                o.what,
                o.file.display(),
                o.line
            ));
        }
        return Ok(found.into_iter().map(|(c, o)| (c, Some(o))).collect());
    }
    let defined = extensions::defined_contexts(dialplan);
    let fallback: Vec<(String, Option<Origin>)> = ["from-internal", "default"]
        .into_iter()
        .filter(|c| defined.iter().any(|d| d == c))
        .map(|c| (c.to_string(), None))
        .collect();
    if fallback.is_empty() {
        return Err(BadInput::at(
            &etc.join("pjsip.conf"),
            None,
            "no phone endpoint (type = endpoint) names a context, and extensions.conf has neither [from-internal] nor [default]: name the contexts your phones dial from with --context",
        ));
    }
    for (c, _) in &fallback {
        notes.push(format!(
            "context {c}: pjsip.conf has no phone endpoint, and extensions.conf has this context (name others with --context)"
        ));
    }
    Ok(fallback)
}
