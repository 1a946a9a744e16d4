//! `callpark import lync` on exports laid out as the cmdlets write them
//! (`tests/data/lync-import/`): both layouts give the same configuration, which callpark's own
//! loader and `check-config` accept; refusals name file, record and field; the lint runs on the
//! site's normalization rules against the imported orbits.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use callpark::config::Config;
use callpark::import::lync::{Options, Source, Sources, import};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/lync-import")
        .join(name)
}

const MAP: [&str; 3] = [
    "pool01.contoso.com=asterisk-a:asterisk",
    "pool02.contoso.com=freeswitch-b:freeswitch",
    "teams=asterisk-a",
];
const SITES: [&str; 2] = ["Redmond=pool01.contoso.com", "Dublin=pool02.contoso.com"];

fn sources(ext: &str) -> Sources {
    let read = |stem: &str| vec![Source::read(&data(&format!("{stem}.{ext}"))).unwrap()];
    Sources {
        orbits: read("orbits"),
        cps: read("cps"),
        voice_policies: read("voice-policies"),
        teams_policies: read("teams-call-park-policies"),
    }
}

fn options() -> Options {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    Options::parse(&s(&MAP), &s(&SITES), None).unwrap()
}

/// What a configuration says about orbits, lots and policies, to compare two of them.
fn summary(c: &Config) -> Vec<String> {
    let mut out: Vec<String> = c
        .orbits
        .ranges()
        .iter()
        .map(|r| format!("range {} {} {} {:?}", r.name, r.span, r.pool, r.lot))
        .collect();
    out.extend(c.lots.iter().map(|l| {
        format!(
            "lot {} {:?} {} {:?} {}",
            l.name,
            l.park.pickup_timeout,
            l.park.max_pickup_attempts,
            l.park.on_timeout.as_ref().map(ToString::to_string),
            l.park.music_on_hold
        )
    }));
    out.extend(
        c.policies
            .rules()
            .iter()
            .map(|r| format!("policy {} {}", r.name, r.enable_call_park)),
    );
    out.extend(c.pbx.iter().map(|p| format!("pbx {} {:?}", p.name, p.kind)));
    out
}

#[test]
fn both_layouts_give_the_same_configuration_and_the_loader_takes_it() {
    let csv = import(&sources("csv"), &options()).unwrap();
    let list = import(&sources("txt"), &options()).unwrap();
    // What `import` returns is what the loader reads from the text, to the letter.
    let reloaded = Config::from_toml(&csv.toml, "imported.toml").unwrap();
    assert_eq!(summary(&reloaded), summary(&csv.config));
    assert_eq!(summary(&csv.config), summary(&list.config));
    assert_eq!(csv.warnings.len(), list.warnings.len());
    let s = summary(&csv.config);
    let expected = [
        "range Redmond CPO 1 *1000-*1999 asterisk-a None",
        "range Redmond CPO 2 7000-7099 asterisk-a None",
        "range Dublin CPO #500-#599 freeswitch-b Some(\"pool02\")",
        "range Teams Tag:SalesPolicy 500-999 500-999 asterisk-a Some(\"teams-salespolicy\")",
        "range Teams Tag:SalesPolicy 1000-1500 1000-1500 asterisk-a Some(\"teams-salespolicy\")",
        "lot pool02 45s 1 None false",
        "lot teams-salespolicy 600s 2 Some(\"sip:operator@contoso.com\") true",
        "policy Tag:RedmondParkers true",
        "policy Teams Tag:SalesPolicy true",
        "policy Site:Dublin true",
        "policy Global false",
        "policy Teams Global false",
        "pbx asterisk-a Asterisk",
        "pbx freeswitch-b Freeswitch",
    ];
    assert_eq!(s, expected);
    // [park] is the Global collection.
    let p = &csv.config.park;
    assert_eq!((p.pickup_timeout.as_secs(), p.max_pickup_attempts), (90, 2));
    // Site:Redmond's custom music is in Lync's file store: said, naming record and field.
    assert!(csv.warnings.iter().any(|w| w.contains(
        "/cps.csv:4: Get-CsCpsConfiguration `Site:Redmond`: MusicOnHoldAudioContentId: custom music on hold"
    )), "{:#?}", csv.warnings);
    assert!(
        list.warnings.iter().any(|w| w.contains(
            "/cps.txt:15: Get-CsCpsConfiguration `Site:Redmond`: MusicOnHoldAudioContentId"
        )),
        "{:#?}",
        list.warnings
    );
}

fn callpark(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_callpark"))
        .args(args)
        .current_dir(data(""))
        .env_remove("CALLPARK_CONFIG")
        .output()
        .unwrap()
}

fn import_args(ext: &str, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = vec!["import".into(), "lync".into()];
    for (flag, stem) in [
        ("--orbits", "orbits"),
        ("--cps", "cps"),
        ("--voice-policies", "voice-policies"),
        ("--teams-policies", "teams-call-park-policies"),
    ] {
        a.push(flag.into());
        a.push(format!("{stem}.{ext}"));
    }
    for m in MAP {
        a.push("--map".into());
        a.push(m.into());
    }
    for s in SITES {
        a.push("--site".into());
        a.push(s.into());
    }
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn run(args: &[String]) -> Output {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    callpark(&a)
}

#[test]
fn the_command_writes_what_check_config_accepts_and_lints_the_rules() {
    let o = run(&import_args("txt", &["--rules", "normalization-rules.csv"]));
    let stderr = String::from_utf8_lossy(&o.stderr);
    // A rule turns 70xx into E.164: the lint's catch makes the import exit 1, as the lint does.
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "note: orbits.txt:24: Get-CsCallParkOrbit `Redmond Pickup`: Type GroupPickup"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("warning: "), "{stderr}");
    assert!(stderr.contains("Four digit extensions"), "{stderr}");
    assert!(stderr.contains("7000-7099"), "{stderr}");
    // stdout is the configuration alone.
    let toml = String::from_utf8(o.stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("callpark.toml");
    std::fs::write(&file, &toml).unwrap();
    let check = callpark(&["--config", file.to_str().unwrap(), "check-config"]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(
        out.contains("orbit_range Dublin CPO: #500-#599 (100 orbits) pool freeswitch-b lot pool02"),
        "{out}"
    );

    // Rules that keep 70xx first: nothing caught, exit 0.
    let o = run(&import_args(
        "csv",
        &["--rules", "normalization-rules-protected.csv"],
    ));
    let stderr = String::from_utf8_lossy(&o.stderr);
    // Teams' 1000-1500 is still four digits: caught. Without Teams, all is clean.
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    let mut args = import_args("csv", &["--rules", "normalization-rules-protected.csv"]);
    let t = args.iter().position(|a| a == "--teams-policies").unwrap();
    args.drain(t..t + 2);
    let o = run(&args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("no orbit is caught"), "{stderr}");
}

#[test]
fn refusals_exit_2_naming_file_record_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cps = dir.path().join("cps.csv");
    std::fs::write(
        &cps,
        "#TYPE Microsoft.Rtc.Management.WritableConfig.Settings.CallParkServiceSettings.CallParkServiceSettings\r\n\
         \"Identity\",\"CallPickupTimeoutThreshold\",\"EnableMusicOnHold\",\"MaxCallPickupAttempts\",\"OnTimeoutURI\",\"MusicOnHoldAudioContentId\"\r\n\
         \"Global\",\"00:01:30\",\"True\",\"12\",,\r\n",
    )
    .unwrap();
    let o = callpark(&[
        "import",
        "lync",
        "--orbits",
        "orbits.csv",
        "--cps",
        cps.to_str().unwrap(),
        "--map",
        MAP[0],
        "--map",
        MAP[1],
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        o.stdout.is_empty(),
        "nothing is written when something is refused"
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        stderr.trim(),
        format!(
            "error: {}:3: Get-CsCpsConfiguration `Global`: MaxCallPickupAttempts: 12 is out of Lync's bounds, 1 to 10",
            cps.display()
        )
    );

    // A Call Park service no --map names: the pool and the option are named.
    let o = callpark(&["import", "lync", "--orbits", "orbits.csv", "--map", MAP[0]]);
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("Call Park service pool02.contoso.com has no [[pbx]]: add --map \"pool02.contoso.com=NAME:KIND\""),
        "{stderr}"
    );
}
