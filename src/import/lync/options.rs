//! What the exports cannot say, given on the command line: which `[[pbx]]` takes each Call
//! Park service's orbits (`--map`), which pools each site holds (`--site`), and an existing
//! configuration whose `[[pbx]]` entries to keep (`--base`).

use super::ImportError;
use super::objects::service_fqdn;
use crate::config::{POOL_NAME, PbxKind};

/// The key of `--map` for the pool that takes the ranges of Teams' call park policies.
pub(super) const TEAMS: &str = "teams";

/// `--map POOL=NAME[:KIND]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MapEntry {
    /// The pool's FQDN in lower case, or [`TEAMS`].
    pub pool: String,
    /// The `[[pbx]]` name.
    pub name: String,
    pub kind: Option<PbxKind>,
    /// As given, for messages.
    pub text: String,
}

/// A `[[pbx]]` of `--base`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BasePbx {
    pub name: String,
    pub kind: Option<PbxKind>,
}

/// `--base FILE`: its text and its `[[pbx]]` entries.
#[derive(Debug, Clone)]
pub(crate) struct Base {
    pub file: String,
    pub text: String,
    pub pbx: Vec<BasePbx>,
}

/// The command line's part of an import.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub(super) map: Vec<MapEntry>,
    /// Site name (as written) and its pools' FQDNs in lower case.
    pub(super) sites: Vec<(String, Vec<String>)>,
    pub(super) base: Option<Base>,
}

fn kind(text: &str) -> Option<PbxKind> {
    match text.to_ascii_lowercase().as_str() {
        "asterisk" => Some(PbxKind::Asterisk),
        "freeswitch" => Some(PbxKind::Freeswitch),
        _ => None,
    }
}

impl Options {
    /// Parses `--map` and `--site` values; `base` is `--base`'s file name and text.
    pub fn parse(
        map: &[String],
        sites: &[String],
        base: Option<(&str, &str)>,
    ) -> Result<Options, ImportError> {
        let pool_name = regex::Regex::new(POOL_NAME).expect("a valid pattern");
        let mut entries: Vec<MapEntry> = Vec::new();
        for m in map {
            let bad = |why: &str| {
                ImportError::Options(format!(
                    "--map {m:?}: {why}; write it POOL=NAME:KIND, like --map \"pool01.contoso.com=pbx-a:asterisk\""
                ))
            };
            let (pool, target) = m.split_once('=').ok_or_else(|| bad("no `=`"))?;
            let pool = if pool.trim().eq_ignore_ascii_case(TEAMS) {
                TEAMS.to_string()
            } else {
                service_fqdn(pool).map_err(|e| bad(&e))?
            };
            let (name, k) = match target.trim().split_once(':') {
                Some((n, k)) => (
                    n,
                    Some(kind(k).ok_or_else(|| {
                        bad(&format!(
                            "`{k}` is not a kind of PBX (asterisk or freeswitch)"
                        ))
                    })?),
                ),
                None => (target.trim(), None),
            };
            if !pool_name.is_match(name) {
                return Err(bad(&format!(
                    "`{name}` is not a [[pbx]] name (1 to 63 letters, digits, `_`, `.` or `-`, starting with a letter or digit)"
                )));
            }
            if entries.iter().any(|e| e.pool == pool) {
                return Err(bad(&format!("{pool} is mapped twice")));
            }
            entries.push(MapEntry {
                pool,
                name: name.to_string(),
                kind: k,
                text: m.clone(),
            });
        }
        let mut site_list: Vec<(String, Vec<String>)> = Vec::new();
        for s in sites {
            let bad = |why: String| {
                ImportError::Options(format!(
                    "--site {s:?}: {why}; write it SITE=POOL,POOL, like --site \"Redmond=pool01.contoso.com\""
                ))
            };
            let (site, pools) = s.split_once('=').ok_or_else(|| bad("no `=`".into()))?;
            let site = site.trim();
            let site = site
                .get(..5)
                .filter(|p| p.eq_ignore_ascii_case("site:"))
                .map_or(site, |_| &site[5..]);
            if site.is_empty() {
                return Err(bad("no site name".into()));
            }
            if site_list.iter().any(|(n, _)| n.eq_ignore_ascii_case(site)) {
                return Err(bad(format!("site {site} is given twice")));
            }
            let pools = pools
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| service_fqdn(p).map_err(&bad))
                .collect::<Result<Vec<_>, _>>()?;
            site_list.push((site.to_string(), pools));
        }
        let base = match base {
            Some((file, text)) => Some(Base::parse(file, text)?),
            None => None,
        };
        Ok(Options {
            map: entries,
            sites: site_list,
            base,
        })
    }

    pub(super) fn base(&self) -> Option<&Base> {
        self.base.as_ref()
    }
}

impl Base {
    /// Reads the `[[pbx]]` entries of an existing configuration; the rest is kept as text.
    fn parse(file: &str, text: &str) -> Result<Base, ImportError> {
        let doc: toml_edit::DocumentMut = text
            .parse()
            .map_err(|e| ImportError::Options(format!("--base {file}: not a TOML file: {e}")))?;
        let mut pbx = Vec::new();
        if let Some(item) = doc.get("pbx") {
            let tables = item.as_array_of_tables().ok_or_else(|| {
                ImportError::Options(format!("--base {file}: `pbx` is not a [[pbx]] list"))
            })?;
            for (i, t) in tables.iter().enumerate() {
                let name = t.get("name").and_then(|n| n.as_str()).ok_or_else(|| {
                    ImportError::Options(format!("--base {file}: pbx[{i}] has no name"))
                })?;
                pbx.push(BasePbx {
                    name: name.to_string(),
                    kind: t.get("kind").and_then(|k| k.as_str()).and_then(kind),
                });
            }
        }
        Ok(Base {
            file: file.to_string(),
            text: text.to_string(),
            pbx,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: &[&str]) -> Result<Options, ImportError> {
        let v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        Options::parse(&v, &[], None)
    }

    #[test]
    fn map_takes_fqdns_service_ids_and_teams() {
        let o = map(&[
            "Pool01.Contoso.com=pbx-a:asterisk",
            "ApplicationServer:pool02.contoso.com=pbx-b:FreeSWITCH",
            "service:ApplicationServer:pool03.contoso.com=pbx-c",
            "Teams=pbx-a",
        ])
        .unwrap();
        let got: Vec<(&str, &str, Option<PbxKind>)> = o
            .map
            .iter()
            .map(|e| (e.pool.as_str(), e.name.as_str(), e.kind))
            .collect();
        assert_eq!(
            got,
            [
                ("pool01.contoso.com", "pbx-a", Some(PbxKind::Asterisk)),
                ("pool02.contoso.com", "pbx-b", Some(PbxKind::Freeswitch)),
                ("pool03.contoso.com", "pbx-c", None),
                (TEAMS, "pbx-a", None),
            ]
        );
    }

    #[test]
    fn bad_maps_name_the_option() {
        for (m, what) in [
            ("pool01.contoso.com", "no `=`"),
            ("pool01.contoso.com=pbx a", "`pbx a` is not a [[pbx]] name"),
            (
                "pool01.contoso.com=pbx-a:yate",
                "`yate` is not a kind of PBX",
            ),
            (
                "Registrar:pool01.contoso.com=pbx-a",
                "is a Registrar service",
            ),
        ] {
            let e = map(&[m]).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("--map {m:?}: ")) && e.contains(what),
                "{e}"
            );
        }
        let e = map(&["pool01.contoso.com=a", "POOL01.contoso.com=b"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("pool01.contoso.com is mapped twice"), "{e}");
    }

    #[test]
    fn sites_list_their_pools() {
        let o = Options::parse(
            &[],
            &[
                "Redmond=pool01.contoso.com, Pool03.contoso.com".into(),
                "Site:Dublin=".into(),
            ],
            None,
        )
        .unwrap();
        assert_eq!(
            o.sites,
            [
                (
                    "Redmond".to_string(),
                    vec![
                        "pool01.contoso.com".to_string(),
                        "pool03.contoso.com".to_string()
                    ]
                ),
                ("Dublin".to_string(), vec![])
            ]
        );
        let e = Options::parse(&[], &["Redmond".into()], None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--site \"Redmond\": no `=`"), "{e}");
    }

    #[test]
    fn base_lists_its_pbx() {
        let o = Options::parse(
            &[],
            &[],
            Some((
                "base.toml",
                "[[pbx]]\nname = \"pbx-a\"\nkind = \"asterisk\"\naddress = \"http://10.0.0.5:8088\"\n",
            )),
        )
        .unwrap();
        assert_eq!(
            o.base().unwrap().pbx,
            [BasePbx {
                name: "pbx-a".into(),
                kind: Some(PbxKind::Asterisk)
            }]
        );
        let e = Options::parse(&[], &[], Some(("base.toml", "[[pbx]\n")))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--base base.toml: not a TOML file"), "{e}");
    }
}
