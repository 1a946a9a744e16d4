//! The FreeSWITCH checks: pure, from [`Facts`] and the configuration.

use std::collections::BTreeSet;
use std::path::Path;

use regex::Regex;

use super::{Connect, Facts};
use crate::config::{Config, ParkConfig, PbxConfig};
use crate::doctor::{Check, Options};
use crate::lint::{Report, Target, freeswitch as fs_lint};
use crate::pbx::freeswitch::dialplan::generate;
use crate::pbx::stamp;

/// Where README tells administrators to write the include.
const INCLUDE_PATH: &str = "/etc/freeswitch/dialplan/callpark/callpark.xml";

/// The commands that write the current include and load it.
fn regenerate(cfg: &Config, pbx: &PbxConfig) -> Vec<String> {
    vec![
        format!(
            "callpark --config {} dialplan freeswitch --pool {} > {INCLUDE_PATH}",
            config_path(cfg),
            pbx.name
        ),
        "fs_cli -x reloadxml".into(),
    ]
}

fn config_path(cfg: &Config) -> String {
    cfg.file.as_deref().map_or_else(
        || "/etc/callpark/callpark.toml".into(),
        |f| f.display().to_string(),
    )
}

/// Every check of one pool, in the order a park needs them.
pub fn checks(cfg: &Config, pbx: &PbxConfig, opts: &Options, f: &Facts) -> Vec<Check> {
    let addr = pbx.address.trim();
    let mut out = Vec::new();
    match &f.connect {
        Some(Connect::Unreachable(e)) => {
            out.push(Check::fail(
                "connection",
                format!("no event socket answers at {addr}: {e}"),
                vec![
                    format!(
                        "<param name=\"listen-ip\" value=\"{}\"/> and <param name=\"listen-port\" value=\"{}\"/> in autoload_configs/event_socket.conf.xml (or change address of [[pbx]] {})",
                        addr.rsplit_once(':').map_or(addr, |(h, _)| h),
                        addr.rsplit_once(':').map_or("8021", |(_, p)| p),
                        pbx.name
                    ),
                    "fs_cli -x 'reload mod_event_socket'".into(),
                ],
            ));
            return out;
        }
        Some(Connect::Refused(r)) => {
            out.push(Check::fail(
                "connection",
                format!("the event socket at {addr} refused the password ({r})"),
                vec![format!(
                    "<param name=\"password\" value=\"...\"/> of event_socket.conf.xml and {} must hold the same secret",
                    pbx.password_env
                        .as_deref()
                        .map_or_else(|| "password of this [[pbx]]".to_string(), |v| format!("${v}"))
                )],
            ));
            return out;
        }
        None => out.push(Check::ok(
            "connection",
            format!("the event socket at {addr} accepted the password"),
        )),
    }
    out.push(match f.events.as_deref() {
        Some(r) if r.starts_with("+OK") => Check::ok("events", "subscribed to callpark's events"),
        Some(r) => Check::fail(
            "events",
            format!("FreeSWITCH refused the event subscription: {}", r.trim()),
            vec![
                "an apply-inbound-acl of event_socket.conf.xml must let callpark's address in"
                    .into(),
            ],
        ),
        None => Check::fail("events", "no answer to the event subscription", vec![]),
    });
    let Some(xml) = f.dialplan.as_deref().filter(|x| x.contains("<section")) else {
        out.push(Check::fail(
            "include",
            "FreeSWITCH did not show its dial plan (xml_locate dialplan)",
            vec![],
        ));
        return out;
    };
    let dp = match fs_lint::parse_str(xml, "xml_locate dialplan") {
        Ok(d) => d,
        Err(e) => {
            out.push(Check::fail(
                "include",
                format!("the dial plan FreeSWITCH shows cannot be read: {e}"),
                vec![],
            ));
            return out;
        }
    };
    let want = stamp::find(&generate(cfg, &pbx.name)).unwrap_or_default();
    let loaded = park_extensions(xml);
    let with: Vec<String> = dp
        .contexts
        .iter()
        .filter(|c| c.extensions.iter().any(|x| x.name == "callpark-park"))
        .map(|c| c.name.clone())
        .collect();
    let phones = phone_contexts(opts, f, pbx);
    if loaded.is_empty() {
        let ctx = phones.first().map_or("default", String::as_str);
        let mut fix = regenerate(cfg, pbx);
        fix.insert(0, "mkdir -p /etc/freeswitch/dialplan/callpark".into());
        fix.insert(
            2,
            format!(
                "<X-PRE-PROCESS cmd=\"include\" data=\"callpark/callpark.xml\"/>   (the first line inside <context name=\"{ctx}\">)"
            ),
        );
        out.push(Check::fail(
            "include",
            "the dial plan FreeSWITCH has loaded holds no callpark extension: the include is not loaded",
            fix,
        ));
        return out;
    }
    let stale: Vec<&(String, Option<String>)> = loaded
        .iter()
        .filter(|(_, s)| s.as_deref() != Some(want.as_str()))
        .collect();
    out.push(if stale.is_empty() {
        Check::ok(
            "include",
            format!(
                "loaded (context {}), and it is the one this configuration generates (stamp {want})",
                with.join(", ")
            ),
        )
    } else {
        Check::fail(
            "include",
            format!(
                "the include loaded in context {} is stale: it carries {}, this configuration generates stamp {want}",
                stale.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>().join(", "),
                stale[0]
                    .1
                    .as_ref()
                    .map_or_else(|| "no stamp".to_string(), |s| format!("stamp {s}"))
            ),
            regenerate(cfg, pbx),
        )
    });
    for ctx in &phones {
        if !dp.contexts.iter().any(|c| c.name.eq_ignore_ascii_case(ctx)) {
            out.push(Check::fail(
                "context",
                format!("phones dial from context {ctx}, which the dial plan does not have"),
                vec![format!(
                    "<context name=\"{ctx}\"> with <X-PRE-PROCESS cmd=\"include\" data=\"callpark/callpark.xml\"/> first, or --context NAME for the context phones dial from"
                )],
            ));
        } else if !with.iter().any(|w| w.eq_ignore_ascii_case(ctx)) {
            out.push(Check::fail(
                "context",
                format!("phones dial from context {ctx}, which does not include callpark's file"),
                vec![format!(
                    "<X-PRE-PROCESS cmd=\"include\" data=\"callpark/callpark.xml\"/>   (the first line inside <context name=\"{ctx}\">), then fs_cli -x reloadxml"
                )],
            ));
        } else {
            out.push(Check::ok(
                "context",
                format!("phones dial from context {ctx}, which includes callpark's file"),
            ));
            out.extend(lint(cfg, &dp, ctx));
        }
    }
    out.push(presence(pbx, f));
    out.extend(music(cfg, pbx, f));
    out
}

/// `(context, stamp)` of every `callpark-park` extension in FreeSWITCH's dump of its dial plan.
fn park_extensions(xml: &str) -> Vec<(String, Option<String>)> {
    let tag = Regex::new(r#"<(context|extension)\b([^>]*)>"#).expect("tag regex");
    let name = Regex::new(r#"\bname="([^"]*)""#).expect("name regex");
    let mut ctx = String::new();
    let mut out = Vec::new();
    for c in tag.captures_iter(xml) {
        let n = name
            .captures(&c[2])
            .map(|m| m[1].to_string())
            .unwrap_or_default();
        if &c[1] == "context" {
            ctx = n;
        } else if n == "callpark-park" {
            out.push((ctx.clone(), stamp::find(&c[2])));
        }
    }
    out
}

/// The contexts phones dial from: as given, else the directory's `user_context`s, else the
/// sofia profile's `context`.
fn phone_contexts(opts: &Options, f: &Facts, pbx: &PbxConfig) -> Vec<String> {
    if !opts.contexts.is_empty() {
        return opts.contexts.clone();
    }
    let var = Regex::new(r#"<variable\s+name="user_context"\s+value="([^"]+)""#).expect("regex");
    let found: BTreeSet<String> = f
        .directory
        .as_deref()
        .map(|d| var.captures_iter(d).map(|c| c[1].to_string()).collect())
        .unwrap_or_default();
    if !found.is_empty() {
        return found.into_iter().collect();
    }
    profile_param(f, pbx, "context")
        .map(|c| vec![c])
        .unwrap_or_else(|| vec!["default".into()])
}

/// The sofia profile callpark dials through: `sip_endpoint`, else `internal`.
fn profile_name(pbx: &PbxConfig) -> &str {
    pbx.sip_endpoint.as_deref().unwrap_or("internal")
}

/// A `<param>` of callpark's sofia profile; None when the profile or the param is absent.
fn profile_param(f: &Facts, pbx: &PbxConfig, param: &str) -> Option<String> {
    let sofia = f.sofia.as_deref()?;
    let start = sofia.find(&format!("<profile name=\"{}\"", profile_name(pbx)))?;
    let body = &sofia[start..];
    let body = &body[..body.find("</profile>").unwrap_or(body.len())];
    let re = Regex::new(&format!(
        r#"<param\s+name="{}"\s+value="([^"]*)""#,
        regex::escape(param)
    ))
    .ok()?;
    re.captures(body).map(|c| c[1].to_string())
}

/// The lint on the live dial plan: a rule hunted before callpark's extensions that takes an
/// orbit sends a retrieve (or a park onto it) somewhere else.
fn lint(cfg: &Config, dp: &fs_lint::Dialplan, ctx: &str) -> Vec<Check> {
    let mut report = Report::new(Target::from_table(&cfg.orbits));
    if let Err(e) = fs_lint::check(dp, ctx, &mut report) {
        return vec![Check::fail("lint", format!("context {ctx}: {e}"), vec![])];
    }
    crate::doctor::lint_checks(
        &report,
        ctx,
        "extension ",
        format!("no extension of context {ctx} takes an orbit before callpark's"),
    )
}

/// Busy lamps need sofia to pass callpark's PRESENCE_IN on to subscribed phones.
fn presence(pbx: &PbxConfig, f: &Facts) -> Check {
    let profile = profile_name(pbx);
    if f.sofia
        .as_deref()
        .is_none_or(|s| !s.contains(&format!("<profile name=\"{profile}\"")))
    {
        return Check::warn(
            "presence",
            format!(
                "FreeSWITCH has no sofia profile {profile}: SIP MESSAGEs and on_timeout sip: URIs cannot be sent through it"
            ),
            vec![format!(
                "sip_endpoint = \"<a profile of sip_profiles/>\" in [[pbx]] {}",
                pbx.name
            )],
        );
    }
    match profile_param(f, pbx, "manage-presence") {
        Some(v) if crate::doctor::switch_true(&v) => Check::ok(
            "presence",
            format!("sofia profile {profile} manages presence: busy-lamp keys light"),
        ),
        _ => Check::warn(
            "presence",
            format!("sofia profile {profile} does not manage presence: busy-lamp keys stay dark"),
            vec![
                format!(
                    "<param name=\"manage-presence\" value=\"true\"/> in sip_profiles/{profile}.xml"
                ),
                format!("fs_cli -x 'sofia profile {profile} restart'"),
            ],
        ),
    }
}

/// The music each of the pool's lots parks with.
fn music(cfg: &Config, pbx: &PbxConfig, f: &Facts) -> Vec<Check> {
    let mut lots: Vec<(String, &ParkConfig)> = vec![("general".into(), &cfg.park)];
    for l in &cfg.lots {
        if cfg
            .orbits
            .pool_ranges(&pbx.name)
            .any(|r| r.lot.as_ref() == Some(&l.name))
        {
            lots.push((format!("lot {}", l.name), &l.park));
        }
    }
    let streams: Vec<(String, String)> = f
        .streams
        .as_deref()
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(','))
        .map(|(n, d)| (n.trim().to_string(), d.trim().to_string()))
        .collect();
    lots.into_iter()
        .map(|(who, p)| {
            if !p.music_on_hold {
                return Check::ok("music", format!("{who}: music on hold is off (silence)"));
            }
            if let Some(file) = &p.music_on_hold_file {
                return if Path::new(file).is_file() {
                    Check::ok("music", format!("{who}: {} exists", file.display()))
                } else {
                    Check::warn(
                        "music",
                        format!("{who}: {} is not a file on this machine: callpark cannot keep it, parked calls hear silence", file.display()),
                        vec![format!("music_on_hold_file = \"<a sound file>\" ({who})")],
                    )
                };
            }
            let media = match &p.music_on_hold_class {
                Some(c) => format!("local_stream://{c}"),
                None => f.hold_music.as_deref().unwrap_or_default().trim().to_string(),
            };
            let Some(stream) = media.strip_prefix("local_stream://") else {
                return if media.is_empty() || media.starts_with("-ERR") || media == "_undef_" {
                    Check::warn(
                        "music",
                        format!("{who}: FreeSWITCH's hold_music variable is not set: parked calls hear silence"),
                        vec!["<X-PRE-PROCESS cmd=\"set\" data=\"hold_music=local_stream://moh\"/> in vars.xml, or music_on_hold_class in callpark.toml".into()],
                    )
                } else {
                    Check::ok("music", format!("{who}: {media}"))
                };
            };
            let name = stream.split('/').next().unwrap_or(stream);
            match streams.iter().find(|(n, _)| n == name) {
                Some((_, dir)) if Path::new(dir).is_dir() && dir_is_empty(dir) => Check::warn(
                    "music",
                    format!("{who}: the stream {name} plays {dir}, which holds no file: parked calls hear silence"),
                    vec![format!("put sound files in {dir} (Debian: freeswitch-music-default)")],
                ),
                Some((_, dir)) => Check::ok("music", format!("{who}: {media} plays {dir}")),
                None => Check::warn(
                    "music",
                    format!("{who}: {media} names a stream local_stream.conf does not have: parked calls hear silence"),
                    vec![format!(
                        "<directory name=\"{name}\" path=\"$${{sounds_dir}}/music/8000\"/> in autoload_configs/local_stream.conf.xml, then fs_cli -x 'reload mod_local_stream'"
                    )],
                ),
            }
        })
        .collect()
}

fn dir_is_empty(dir: &str) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none())
}
