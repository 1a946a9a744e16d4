//! `callpark import lync`: a Lync / Skype for Business Server call park, as its administrators
//! can export it, written out as callpark's configuration.
//!
//! The inputs are what four cmdlets print, either as `Export-Csv` files or as their default
//! list output (`Get-CsCallParkOrbit > orbits.txt`): `Get-CsCallParkOrbit` (the orbit table),
//! `Get-CsCpsConfiguration` (the Call Park service settings), `Get-CsVoicePolicy`
//! (`EnableCallPark`) and Teams' `Get-CsTeamsCallParkPolicy`. The steps, one file each:
//! - [`record`] decodes a file (UTF-8 or the UTF-16 that Windows PowerShell redirects write)
//!   and tells the layout, read into named fields by [`csv`] or [`list`];
//! - [`objects`] turns records into Lync's objects, refusing what Lync would not accept;
//! - [`map`] maps them onto callpark's keys (pools onto `[[pbx]]` by `--map`), saying what has
//!   no equivalent;
//! - [`render`] writes the TOML, which [`import`] then loads with callpark's own validation.
//!
//! ```
//! use callpark::import::lync::{Options, Source, Sources, import};
//!
//! let orbits = "#TYPE Microsoft.Rtc.Management.Voice.Helpers.DisplayCallParkOrbits\r\n\
//!     \"Identity\",\"NumberRangeStart\",\"NumberRangeEnd\",\"CallParkServiceId\",\"CallParkServerFqdn\",\"Type\"\r\n\
//!     \"Redmond CPO 1\",\"*1000\",\"*1999\",\"ApplicationServer:pool01.contoso.com\",\"pool01.contoso.com\",\"CallPark\"\r\n";
//! let sources = Sources {
//!     orbits: vec![Source::new("orbits.csv", orbits)],
//!     ..Sources::default()
//! };
//! let options = Options::parse(&["pool01.contoso.com=pbx-a:asterisk".into()], &[], None)?;
//! let imported = import(&sources, &options)?;
//! assert!(imported.toml.contains("first = \"*1000\""));
//! assert_eq!(imported.config.orbits.ranges()[0].pool, "pbx-a");
//! # Ok::<(), callpark::import::lync::ImportError>(())
//! ```

mod csv;
mod list;
mod map;
mod objects;
mod options;
mod record;
mod render;

use thiserror::Error;

use crate::config::{Config, ConfigError};

pub use options::Options;

/// A configuration imported from Lync, checked by callpark's own loader.
#[derive(Debug)]
pub struct Imported {
    /// The TOML text.
    pub toml: String,
    /// The same, as callpark loads it.
    pub config: Config,
    /// Lync values with no callpark equivalent, and what the exports cannot tell.
    pub warnings: Vec<String>,
    /// What was left out on purpose (group pickup orbits, disabled Teams ranges).
    pub notes: Vec<String>,
}

/// One exported file: its name (for messages) and its text.
#[derive(Debug, Clone)]
pub struct Source {
    pub file: String,
    pub text: String,
}

impl Source {
    pub fn new(file: &str, text: &str) -> Source {
        Source {
            file: file.to_string(),
            text: text.to_string(),
        }
    }

    /// Reads a file as Windows PowerShell writes it: UTF-8 (with or without a byte order mark,
    /// `Export-Csv`'s ASCII among it) or UTF-16 with its byte order mark (what `>` and
    /// `Out-File` write by default).
    pub fn read(path: &std::path::Path) -> Result<Source, ImportError> {
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| ImportError::Read {
            file: file.clone(),
            msg: e.to_string(),
        })?;
        let text = record::decode(&bytes, &file)?;
        Ok(Source { file, text })
    }
}

/// The exports, by the cmdlet that wrote them.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `Get-CsCallParkOrbit`.
    pub orbits: Vec<Source>,
    /// `Get-CsCpsConfiguration`.
    pub cps: Vec<Source>,
    /// `Get-CsVoicePolicy`.
    pub voice_policies: Vec<Source>,
    /// `Get-CsTeamsCallParkPolicy`.
    pub teams_policies: Vec<Source>,
}

/// Why nothing was imported. Every message names the file and, for a value, the record (its
/// Identity) and the field.
#[derive(Debug, Error)]
pub enum ImportError {
    /// A file that cannot be read or decoded.
    #[error("{file}: {msg}")]
    Read { file: String, msg: String },
    /// A file that is neither `Export-Csv` nor list output, or a record without an Identity.
    #[error("{file}:{line}: {msg}")]
    Layout {
        file: String,
        line: usize,
        msg: String,
    },
    /// A value Lync does not accept.
    #[error("{file}:{line}: {cmdlet} `{identity}`: {field}: {msg}")]
    Value {
        file: String,
        line: usize,
        cmdlet: &'static str,
        identity: String,
        field: String,
        msg: String,
    },
    /// Two records whose orbits overlap: Lync keeps every orbit in one range, and so does
    /// callpark.
    #[error(
        "{a} and {b} share orbit {orbit}: an orbit belongs to one range (remove or renumber one of them)"
    )]
    Overlap { a: String, b: String, orbit: String },
    /// Orbits on a Call Park service that no `--map` sends to a `[[pbx]]`.
    #[error(
        "{record}: Call Park service {pool} has no [[pbx]]: add --map \"{pool}=NAME:KIND\" (NAME the [[pbx]] that takes its orbits, KIND asterisk or freeswitch)"
    )]
    Unmapped { record: String, pool: String },
    /// The options (`--map`, `--site`, `--base`) are wrong or miss something the exports need.
    #[error("{0}")]
    Options(String),
    /// The configuration written does not load (with `--base`, that file's part may be why).
    #[error("the imported configuration does not load: {0}")]
    Config(ConfigError),
}

/// The label the written configuration is loaded under.
const IMPORTED: &str = "imported configuration";

/// Reads the exports, maps them onto callpark's configuration and checks the result with
/// callpark's own loader.
pub fn import(sources: &Sources, options: &Options) -> Result<Imported, ImportError> {
    if sources.orbits.is_empty() && sources.teams_policies.is_empty() {
        return Err(ImportError::Options(
            "no orbits to import: give --orbits FILE (Get-CsCallParkOrbit) or --teams-policies FILE (Get-CsTeamsCallParkPolicy)".into(),
        ));
    }
    let read = |list: &[Source]| -> Result<Vec<(String, Vec<record::Record>)>, ImportError> {
        list.iter()
            .map(|s| Ok((s.file.clone(), record::read(&s.text, &s.file)?)))
            .collect()
    };
    let exported = objects::Exported {
        orbits: objects::orbits(&read(&sources.orbits)?)?,
        cps: objects::cps(&read(&sources.cps)?)?,
        voice_policies: objects::voice_policies(&read(&sources.voice_policies)?)?,
        teams_policies: objects::teams_policies(&read(&sources.teams_policies)?)?,
    };
    let mut said = map::Said::default();
    let plan = map::plan(&exported, options, &mut said)?;
    let files: Vec<&str> = [
        &sources.orbits,
        &sources.cps,
        &sources.voice_policies,
        &sources.teams_policies,
    ]
    .into_iter()
    .flatten()
    .map(|s| s.file.as_str())
    .collect();
    let toml = render::render(&plan, &files, options.base(), &mut said);
    let config = Config::from_toml(&toml, IMPORTED).map_err(ImportError::Config)?;
    Ok(Imported {
        toml,
        config,
        warnings: said.warnings,
        notes: said.notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PbxKind;

    const ORBIT_HEAD: &str = "#TYPE Microsoft.Rtc.Management.Voice.Helpers.DisplayCallParkOrbits\r\n\"Identity\",\"NumberRangeStart\",\"NumberRangeEnd\",\"CallParkServiceId\",\"CallParkServerFqdn\",\"Type\"\r\n";
    const CPS_HEAD: &str = "\"Identity\",\"CallPickupTimeoutThreshold\",\"EnableMusicOnHold\",\"MaxCallPickupAttempts\",\"OnTimeoutURI\",\"MusicOnHoldAudioContentId\"\r\n";

    fn orbit(id: &str, first: &str, last: &str, pool: &str, kind: &str) -> String {
        format!(
            "\"{id}\",\"{first}\",\"{last}\",\"ApplicationServer:{pool}\",\"{pool}\",\"{kind}\"\r\n"
        )
    }

    fn two_pools() -> String {
        format!(
            "{ORBIT_HEAD}{}{}{}",
            orbit(
                "Redmond CPO",
                "*1000",
                "*1999",
                "pool01.contoso.com",
                "CallPark"
            ),
            orbit(
                "Dublin CPO",
                "#500",
                "#599",
                "pool02.contoso.com",
                "CallPark"
            ),
            orbit(
                "Redmond Pickup",
                "8000",
                "8099",
                "pool01.contoso.com",
                "GroupPickup"
            ),
        )
    }

    fn run(
        orbits: &str,
        cps: Option<&str>,
        map: &[&str],
        sites: &[&str],
    ) -> Result<Imported, ImportError> {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let sources = Sources {
            orbits: vec![Source::new("orbits.csv", orbits)],
            cps: cps.map(|c| Source::new("cps.csv", c)).into_iter().collect(),
            ..Sources::default()
        };
        import(&sources, &Options::parse(&s(map), &s(sites), None)?)
    }

    const MAP: [&str; 2] = [
        "pool01.contoso.com=pbx-a:asterisk",
        "pool02.contoso.com=pbx-b:freeswitch",
    ];

    #[test]
    fn pools_map_onto_pbx_and_group_pickup_is_left_out_with_a_note() {
        let i = run(&two_pools(), None, &MAP, &[]).unwrap();
        let ranges: Vec<(String, String, String)> = i
            .config
            .orbits
            .ranges()
            .iter()
            .map(|r| (r.name.clone(), r.span.to_string(), r.pool.clone()))
            .collect();
        assert_eq!(
            ranges,
            [
                ("Redmond CPO".into(), "*1000-*1999".into(), "pbx-a".into()),
                ("Dublin CPO".into(), "#500-#599".into(), "pbx-b".into()),
            ]
        );
        let kinds: Vec<(&str, PbxKind)> = i
            .config
            .pbx
            .iter()
            .map(|p| (p.name.as_str(), p.kind))
            .collect();
        assert_eq!(
            kinds,
            [("pbx-a", PbxKind::Asterisk), ("pbx-b", PbxKind::Freeswitch)]
        );
        assert_eq!(i.notes.len(), 1);
        assert!(
            i.notes[0].starts_with(
                "orbits.csv:5: Get-CsCallParkOrbit `Redmond Pickup`: Type GroupPickup"
            ),
            "{:?}",
            i.notes
        );
        // Without Get-CsCpsConfiguration, [park] is Lync's defaults, and says so.
        assert_eq!(i.config.park.pickup_timeout.as_secs(), 90);
        assert!(
            i.warnings
                .iter()
                .any(|w| w.contains("no Get-CsCpsConfiguration export"))
        );
        // Nor any policy: park is off for everyone, as in callpark without one.
        assert!(i.config.policies.rules().is_empty());
        assert!(
            i.warnings
                .iter()
                .any(|w| w.contains("park is off for everyone"))
        );
        // Two PBXes: each needs a `reach`, which Lync cannot tell.
        assert!(
            i.warnings.iter().any(|w| w.contains("`reach`")),
            "{:?}",
            i.warnings
        );
    }

    #[test]
    fn a_pool_without_map_names_the_pool_and_the_option() {
        let e = run(&two_pools(), None, &MAP[..1], &[])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "orbits.csv:4: Get-CsCallParkOrbit `Dublin CPO`: Call Park service pool02.contoso.com has no [[pbx]]: add --map \"pool02.contoso.com=NAME:KIND\" (NAME the [[pbx]] that takes its orbits, KIND asterisk or freeswitch)"
        );
        let e = run(
            &two_pools(),
            None,
            &["pool01.contoso.com=pbx-a", MAP[1]],
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("which kind of PBX is pbx-a?"), "{e}");
        // One name for two pools: its kind is said once.
        let i = run(
            &two_pools(),
            None,
            &[
                "pool01.contoso.com=pbx-a:asterisk",
                "pool02.contoso.com=pbx-a",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(i.config.pbx.len(), 1);
        assert!(i.config.orbits.ranges().iter().all(|r| r.pool == "pbx-a"));
    }

    #[test]
    fn a_service_with_settings_of_its_own_is_a_lot() {
        let cps = format!(
            "{CPS_HEAD}\"Global\",\"00:01:30\",\"True\",\"2\",\"sip:operator@contoso.com\",\r\n\"Site:Dublin\",\"00:00:45\",\"False\",\"1\",,\r\n\"Service:ApplicationServer:pool01.contoso.com\",\"00:01:30\",\"True\",\"2\",\"sip:operator@contoso.com\",\r\n"
        );
        let i = run(
            &two_pools(),
            Some(&cps),
            &MAP,
            &["Dublin=pool02.contoso.com"],
        )
        .unwrap();
        let p = &i.config.park;
        assert_eq!(
            (
                p.pickup_timeout.as_secs(),
                p.max_pickup_attempts,
                p.music_on_hold
            ),
            (90, 2, true)
        );
        assert_eq!(
            p.on_timeout.as_ref().map(ToString::to_string).as_deref(),
            Some("sip:operator@contoso.com")
        );
        // pool01's own collection equals Global: no lot. Dublin's differs: pool02's lot.
        assert_eq!(i.config.lots.len(), 1);
        let lot = &i.config.lots[0];
        assert_eq!(lot.name, "pool02");
        assert_eq!(
            (
                lot.park.pickup_timeout.as_secs(),
                lot.park.max_pickup_attempts,
                lot.park.music_on_hold,
                lot.park.on_timeout.is_none()
            ),
            (45, 1, false, true)
        );
        let lots: Vec<Option<&str>> = i
            .config
            .orbits
            .ranges()
            .iter()
            .map(|r| r.lot.as_deref())
            .collect();
        assert_eq!(lots, [None, Some("pool02")]);
        assert!(i.toml.contains(
            "# Call Park service pool02.contoso.com: the settings of Site:Dublin (cps.csv:3)"
        ));
        // A sip: on_timeout needs the PBX's sip_endpoint, which Lync cannot tell.
        assert!(i.warnings.iter().any(|w| w.contains("sip_endpoint")));
    }

    #[test]
    fn empty_attempts_drop_the_fallback_as_lync_does() {
        let cps = format!(
            "{CPS_HEAD}\"Global\",\"00:01:00\",\"True\",,\"sip:operator@contoso.com\",\"8f0b2d4c-7a5e-4c2e-9a1d-6b3e5f7a9c01\"\r\n"
        );
        let i = run(&two_pools(), Some(&cps), &MAP, &[]).unwrap();
        assert_eq!(i.config.park.max_pickup_attempts, 1);
        assert!(i.config.park.on_timeout.is_none());
        let w: Vec<&String> = i
            .warnings
            .iter()
            .filter(|w| w.starts_with("cps.csv:2: Get-CsCpsConfiguration `Global`: "))
            .collect();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("MusicOnHoldAudioContentId: custom music on hold"));
        assert!(w[1].contains("OnTimeoutURI: MaxCallPickupAttempts is empty"));
    }

    #[test]
    fn a_site_collection_needs_its_pools() {
        let cps = format!("{CPS_HEAD}\"Site:Dublin\",\"00:00:45\",\"False\",\"1\",,\r\n");
        let e = run(&two_pools(), Some(&cps), &MAP, &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "cps.csv:2: Get-CsCpsConfiguration `Site:Dublin`: which pools are in site Dublin"
            ) && e.contains("--site \"Dublin=POOL_FQDN,...\""),
            "{e}"
        );
        let e = run(
            &two_pools(),
            Some(&cps),
            &MAP,
            &["Dublin=pool02.contoso.com", "Cork=pool02.contoso.com"],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("pool pool02.contoso.com in Dublin and Cork"),
            "{e}"
        );
    }

    #[test]
    fn an_out_of_range_value_refuses_the_whole_import() {
        let cps = format!("{CPS_HEAD}\"Global\",\"00:15:00\",\"True\",\"1\",,\r\n");
        let e = run(&two_pools(), Some(&cps), &MAP, &[])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "cps.csv:2: Get-CsCpsConfiguration `Global`: CallPickupTimeoutThreshold: `00:15:00` is out of Lync's bounds, 00:00:10 to 00:10:00"
        );
    }

    #[test]
    fn overlapping_ranges_name_both_records() {
        let orbits = format!(
            "{ORBIT_HEAD}{}{}",
            orbit("A", "7000", "7099", "pool01.contoso.com", "CallPark"),
            orbit("B", "7050", "7149", "pool01.contoso.com", "CallPark"),
        );
        let e = run(&orbits, None, &MAP, &[]).unwrap_err().to_string();
        assert!(
            e.starts_with("Get-CsCallParkOrbit `A` (orbits.csv:3), Call Park service pool01.contoso.com and Get-CsCallParkOrbit `B` (orbits.csv:4)")
                && e.contains("share orbit 7050"),
            "{e}"
        );
    }

    #[test]
    fn teams_policies_get_lots_and_lync_policies_keep_to_lync_orbits() {
        let voice =
            "\"Identity\",\"EnableCallPark\"\r\n\"Global\",\"True\"\r\n\"Tag:Lobby\",\"False\"\r\n";
        let teams = "\"Identity\",\"AllowCallPark\",\"PickupRangeStart\",\"PickupRangeEnd\",\"ParkTimeoutSeconds\"\r\n\"Global\",\"False\",\"10\",\"99\",\"300\"\r\n\"Tag:SalesPolicy\",\"True\",\"500\",\"1500\",\"900\"\r\n";
        let sources = Sources {
            orbits: vec![Source::new("orbits.csv", &two_pools())],
            voice_policies: vec![Source::new("voice.csv", voice)],
            teams_policies: vec![Source::new("teams.csv", teams)],
            ..Sources::default()
        };
        let map: Vec<String> = MAP
            .iter()
            .map(|s| s.to_string())
            .chain(["teams=pbx-a".to_string()])
            .collect();
        let i = import(&sources, &Options::parse(&map, &[], None).unwrap()).unwrap();
        let teams: Vec<(String, String)> = i
            .config
            .orbits
            .ranges()
            .iter()
            .filter(|r| r.lot.as_deref() == Some("teams-salespolicy"))
            .map(|r| (r.span.to_string(), r.pool.clone()))
            .collect();
        assert_eq!(
            teams,
            [
                ("500-999".into(), "pbx-a".into()),
                ("1000-1500".into(), "pbx-a".into())
            ]
        );
        // 900 s is more than callpark's 10 minutes: imported as 10m, with a warning.
        let lot = i.config.lot("teams-salespolicy").unwrap();
        assert_eq!(lot.park.pickup_timeout.as_secs(), 600);
        assert!(
            i.warnings
                .iter()
                .any(|w| w.contains("`Tag:SalesPolicy`: ParkTimeoutSeconds: 900"))
        );
        assert!(
            i.notes
                .iter()
                .any(|n| n.contains("`Global`: AllowCallPark False"))
        );
        // Per-user first, then Global; a Lync user does not park on Teams' orbits.
        let rules = i.config.policies.rules();
        let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Tag:Lobby",
                "Teams Tag:SalesPolicy",
                "Global",
                "Teams Global"
            ]
        );
        assert!(
            i.toml.contains("lots = [\"general\", \"pool02\"]")
                || i.toml.contains("lots = [\"general\"]")
        );
        assert!(i.toml.contains("default_lot = \"teams-salespolicy\""));
        assert!(
            i.warnings
                .iter()
                .any(|w| w.contains("Tag:Lobby") && w.contains("Get-CsUser"))
        );
        // Teams parks in the cloud: without --map teams=..., the import says where to say it.
        let e = import(&sources, &Options::parse(&map[..2], &[], None).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("--map \"teams=NAME:KIND\""), "{e}");
    }

    #[test]
    fn base_keeps_its_pbx_and_service() {
        let base = "[service]\ndata_dir = \"/var/lib/callpark\"\n\n[park]\npark_code = \"*70\"\npickup_timeout = \"5m\"\n\n[[pbx]]\nname = \"pbx-a\"\nkind = \"asterisk\"\naddress = \"http://10.0.0.5:8088\"\nusername = \"callpark\"\npassword_env = \"ARI_SECRET\"\n\n[[orbit_range]]\nname = \"old\"\nfirst = \"701\"\nlast = \"799\"\npool = \"pbx-a\"\n";
        let map = vec![
            "pool01.contoso.com=pbx-a".to_string(),
            "pool02.contoso.com=pbx-a".to_string(),
        ];
        let opts = Options::parse(&map, &[], Some(("base.toml", base))).unwrap();
        let sources = Sources {
            orbits: vec![Source::new("orbits.csv", &two_pools())],
            ..Sources::default()
        };
        let i = import(&sources, &opts).unwrap();
        assert_eq!(i.config.pbx.len(), 1);
        assert_eq!(i.config.pbx[0].address, "http://10.0.0.5:8088");
        assert_eq!(
            i.config.service.data_dir,
            std::path::PathBuf::from("/var/lib/callpark")
        );
        // Lync's settings replace the base's; what Lync has no say in stays.
        assert_eq!(i.config.park.park_code, "*70");
        assert_eq!(i.config.park.pickup_timeout.as_secs(), 90);
        // The base's orbit table is replaced, and that is said.
        assert!(i.config.orbits.ranges().iter().all(|r| r.name != "old"));
        assert!(
            i.warnings
                .iter()
                .any(|w| w.contains("[[orbit_range]]") && w.contains("replaced"))
        );
        assert!(!i.warnings.iter().any(|w| w.contains("address and secret")));
    }
}
