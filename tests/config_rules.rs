//! Configuration rules: bounds, orbit format, global uniqueness, and errors that name the key
//! and its line.

use std::time::Duration;

use callpark::config::{Config, ConfigError};
use callpark::park::Destination;

const BASE: &str = r#"
[[pbx]]
name = "pbx-a"
kind = "asterisk"
address = "http://127.0.0.1:8088"

[[pbx]]
name = "pbx-b"
kind = "asterisk"
address = "http://127.0.0.1:8089"
"#;

fn load(extra: &str) -> Result<Config, ConfigError> {
    Config::from_toml(&format!("{extra}\n{BASE}"), "test.toml")
}

fn invalid(extra: &str) -> (String, Option<usize>, String) {
    match load(extra) {
        Err(ConfigError::Invalid(i)) => (i.key, i.line, i.message),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn defaults_are_lyncs() {
    let c = load("").unwrap();
    assert_eq!(c.park.pickup_timeout, Duration::from_secs(90));
    assert_eq!(c.park.max_pickup_attempts, 1);
    assert_eq!(c.park.ringback_ring_time, Duration::from_secs(20));
    assert!(c.park.music_on_hold);
    assert!(c.park.on_timeout.is_none());
    // Park is off for everyone without a policy.
    assert!(!c.policies.allows(["100", "PJSIP/alice"]));
}

#[test]
fn humane_durations_and_bounds() {
    let c = load("[park]\npickup_timeout = \"2m\"\nringback_ring_time = \"15s\"").unwrap();
    assert_eq!(c.park.pickup_timeout, Duration::from_secs(120));
    let (key, line, msg) = invalid("[park]\npickup_timeout = \"9s\"");
    assert_eq!((key.as_str(), line), ("park.pickup_timeout", Some(2)));
    assert!(msg.contains("10s to 10m"), "{msg}");
    let (key, _, _) = invalid("[park]\npickup_timeout = \"11m\"");
    assert_eq!(key, "park.pickup_timeout");
    load("[park]\npickup_timeout = \"10s\"").unwrap();
    load("[park]\npickup_timeout = \"10m\"").unwrap();
    for bad in ["0", "11"] {
        let (key, _, msg) = invalid(&format!("[park]\nmax_pickup_attempts = {bad}"));
        assert_eq!(key, "park.max_pickup_attempts");
        assert!(msg.contains("1 to 10"));
    }
    load("[park]\nmax_pickup_attempts = 10").unwrap();
    let (key, _, _) = invalid("[park]\nringback_ring_time = \"1s\"");
    assert_eq!(key, "park.ringback_ring_time");
}

#[test]
fn type_and_syntax_errors_name_the_file_and_key() {
    let e = load("[park]\nmax_pickup_attempts = \"many\"")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("test.toml") && e.contains("max_pickup_attempts"),
        "{e}"
    );
    let e = load("[park]\npickup_timeout = \"ninety\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("pickup_timeout"), "{e}");
    let e = load("[park\n").unwrap_err().to_string();
    assert!(e.contains("test.toml") && e.contains("line 1"), "{e}");
    let e = load("[park]\npickup_timout = \"90s\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("pickup_timout"), "{e}");
}

#[test]
fn on_timeout_forms() {
    for ok in [
        "exten:0@from-internal",
        "sip:operator@example.com",
        "PJSIP/operator",
        "sofia/internal/1000@example.com",
    ] {
        let c = load(&format!("[park]\non_timeout = \"{ok}\"")).unwrap();
        assert_eq!(c.park.on_timeout, Some(Destination::parse(ok).unwrap()));
    }
    for bad in ["operator", "exten:0", "sip:operator", ""] {
        let (key, _, _) = invalid(&format!("[park]\non_timeout = \"{bad}\""));
        assert_eq!(key, "park.on_timeout", "{bad}");
    }
}

#[test]
fn moh_settings_must_agree() {
    let (key, _, _) = invalid("[park]\nmusic_on_hold = false\nmusic_on_hold_class = \"jazz\"");
    assert_eq!(key, "park.music_on_hold");
    let (key, _, _) =
        invalid("[park]\nmusic_on_hold_class = \"jazz\"\nmusic_on_hold_file = \"/x.wav\"");
    assert_eq!(key, "park.music_on_hold_file");
}

fn range(name: &str, first: &str, last: &str, pool: &str) -> String {
    format!(
        "[[orbit_range]]\nname = \"{name}\"\nfirst = \"{first}\"\nlast = \"{last}\"\npool = \"{pool}\"\n"
    )
}

#[test]
fn orbit_format_rules_name_range_and_line() {
    let cases = [
        ("*100", "*199", "above 100"),
        ("#0700", "#0799", "starts with 0"),
        ("*123456789", "*123456789", "too many digits"),
        ("1234567890", "1234567890", "too many digits"),
        ("*700", "#799", "same prefix"),
        ("700", "7000", "same number of digits"),
        ("799", "700", "is above last"),
        ("7a0", "799", "not a digit"),
    ];
    for (first, last, why) in cases {
        let (key, line, msg) = invalid(&format!(
            "{}{}",
            range("ok", "500", "599", "pbx-a"),
            range("bad", first, last, "pbx-a")
        ));
        assert!(key.starts_with("orbit_range[1]."), "{key}");
        assert!(
            line == Some(8) || line == Some(9),
            "{first}-{last}: line {line:?}"
        );
        assert!(
            msg.contains("range `bad`") && msg.contains(why),
            "{first}-{last}: {msg}"
        );
    }
}

#[test]
fn overlapping_ranges_across_pools_name_both_and_first_shared_orbit() {
    let (key, line, msg) = invalid(&format!(
        "{}{}",
        range("sales", "*7000", "*7999", "pbx-a"),
        range("support", "*7500", "*8500", "pbx-b")
    ));
    assert_eq!(key, "orbit_range[1]");
    assert_eq!(line, Some(6));
    assert!(
        msg.contains("`sales`") && msg.contains("`support`") && msg.contains("`*7500`"),
        "{msg}"
    );
    assert!(msg.contains("pbx-a") && msg.contains("pbx-b"), "{msg}");
    // Same digits, different prefix or length: no overlap.
    load(&format!(
        "{}{}{}",
        range("a", "*7000", "*7999", "pbx-a"),
        range("b", "#7000", "#7999", "pbx-b"),
        range("c", "7000", "7999", "pbx-b")
    ))
    .unwrap();
}

#[test]
fn range_size_and_pool_rules() {
    let (_, _, msg) = invalid(&range("huge", "100000000", "101000000", "pbx-a"));
    assert!(msg.contains("at most 1000000"), "{msg}");
    let (key, _, msg) = invalid(&range("lost", "700", "799", "pbx-z"));
    assert_eq!(key, "orbit_range[0].pool");
    assert!(msg.contains("pbx-z"));
}

#[test]
fn whole_table_of_ten_million_orbits_loads() {
    let mut text = String::new();
    for i in 0..10 {
        text += &range(
            &format!("r{i}"),
            &format!("{}000000", 10 + i),
            &format!("{}999999", 10 + i),
            "pbx-a",
        );
    }
    let c = load(&text).unwrap();
    assert_eq!(c.orbits.total(), 10_000_000);
}

#[test]
fn policies_first_match_decides() {
    let c = load(
        "[[policy]]\nname = \"lobby\"\nenable_call_park = false\nusers = [\"150\"]\n\
         [[policy]]\nname = \"staff\"\nenable_call_park = true\npatterns = [\"1[0-9]{2}\"]\n",
    )
    .unwrap();
    assert!(c.policies.allows(["120"]));
    assert!(!c.policies.allows(["150"]));
    assert!(!c.policies.allows(["1200"]));
    let (key, _, _) =
        invalid("[[policy]]\nname = \"x\"\nenable_call_park = true\npatterns = [\"(\"]");
    assert_eq!(key, "policy[0].patterns");
}

#[test]
fn secrets_come_from_file_or_environment_and_only_run_needs_them() {
    // An unset variable does not stop the file from loading: read-only commands never talk
    // to the PBX. `check_secrets` (what `run` asks) names the key and the variable.
    let c = load(
        "[[pbx]]\nname = \"pbx-c\"\nkind = \"asterisk\"\naddress = \"x\"\npassword_env = \"CALLPARK_TEST_NO_SUCH_VAR\"\n",
    )
    .unwrap();
    let missing = c.check_secrets();
    assert!(!missing.is_empty());
    assert_eq!(missing[0].key, "pbx[0].password");
    assert!(missing[0].message.contains("CALLPARK_TEST_NO_SUCH_VAR"));
    let (key, _, msg) = invalid(
        "[[pbx]]\nname = \"pbx-c\"\nkind = \"asterisk\"\naddress = \"x\"\npassword = \"a\"\npassword_env = \"B\"\n",
    );
    assert_eq!(key, "pbx[0].password");
    assert!(msg.contains("not both"), "{msg}");
}

#[test]
fn example_config_is_valid() {
    let text = std::fs::read_to_string("contrib/callpark.example.toml").unwrap();
    let c = Config::from_toml(&text, "contrib/callpark.example.toml");
    // Its secrets come from the environment, which only `run` needs.
    let c = c.unwrap();
    assert_eq!(c.orbits.ranges().len(), 3);
    assert_eq!(c.pbx.len(), 2, "an Asterisk and a FreeSWITCH pool");
    assert_eq!(c.lots.len(), 1);
}

const LOTS: &str = r#"
[[lot]]
name = "sales"
pickup_timeout = "45s"
max_pickup_attempts = 3
on_timeout = "none"
music_on_hold_class = "jazz"
caller_id_prefix = "Sales"
on_busy_orbit = "next_free"

[[orbit_range]]
name = "main"
first = "700"
last = "749"
pool = "pbx-a"

[[orbit_range]]
name = "sales"
first = "750"
last = "759"
pool = "pbx-a"
lot = "sales"
"#;

#[test]
fn a_lot_overrides_park_settings_and_gets_its_park_code() {
    let c = load(&format!(
        "[park]\non_timeout = \"exten:0@operator\"\nmusic_on_hold_file = \"/tmp/x.wav\"\n{LOTS}"
    ))
    .unwrap();
    let l = c.lot("sales").unwrap();
    assert_eq!(l.park_codes, vec!["park-sales"]);
    assert_eq!(l.park.pickup_timeout, Duration::from_secs(45));
    assert_eq!(l.park.max_pickup_attempts, 3);
    assert!(
        l.park.on_timeout.is_none(),
        "`none` drops [park]'s fallback"
    );
    assert_eq!(l.park.music_on_hold_class.as_deref(), Some("jazz"));
    assert!(
        l.park.music_on_hold_file.is_none(),
        "the lot's class replaces the file"
    );
    assert_eq!(
        l.park.ringback_ring_time, c.park.ringback_ring_time,
        "inherited"
    );
    assert!(c.park.on_timeout.is_some());
}

#[test]
fn lots_are_checked_against_ranges_policies_and_park_codes() {
    // A range naming an unknown lot.
    let (key, line, msg) = invalid(
        "[[orbit_range]]\nname = \"r\"\nfirst = \"700\"\nlast = \"709\"\npool = \"pbx-a\"\nlot = \"nope\"",
    );
    assert_eq!((key.as_str(), line), ("orbit_range[0].lot", Some(6)));
    assert!(msg.contains("no [[lot]] defines"), "{msg}");
    // A lot with no range.
    let (key, _, msg) = invalid(&format!("{LOTS}\n[[lot]]\nname = \"empty\""));
    assert_eq!(key, "lot[1].name");
    assert!(msg.contains("has no orbits"), "{msg}");
    // One park code for two lots, or for a lot and the general park code.
    let (key, _, msg) = invalid(&LOTS.replace(
        "name = \"sales\"\npickup",
        "name = \"sales\"\npark_codes = [\"park\"]\npickup",
    ));
    assert_eq!(key, "lot[0].park_codes");
    assert!(msg.contains("already park.park_code"), "{msg}");
    // A lot's bounds are checked as [park]'s are.
    let (key, _, _) = invalid(&LOTS.replace("\"45s\"", "\"5s\""));
    assert_eq!(key, "lot[0].pickup_timeout");
    // A policy naming an unknown lot, or a default lot it does not allow.
    let (key, _, _) = invalid(&format!(
        "[[policy]]\nname = \"p\"\nenable_call_park = true\nlots = [\"nope\"]\n{LOTS}"
    ));
    assert_eq!(key, "policy[0].lots");
    let (key, _, msg) = invalid(&format!(
        "[[policy]]\nname = \"p\"\nenable_call_park = true\nlots = [\"general\"]\ndefault_lot = \"sales\"\n{LOTS}"
    ));
    assert_eq!(key, "policy[0].default_lot");
    assert!(msg.contains("not in its lots"), "{msg}");
    load(&format!(
        "[[policy]]\nname = \"p\"\nenable_call_park = true\nlots = [\"general\", \"sales\"]\ndefault_lot = \"sales\"\n{LOTS}"
    ))
    .unwrap();
    let (key, _, _) = invalid(&LOTS.replace("name = \"sales\"\npick", "name = \"general\"\npick"));
    assert_eq!(key, "lot[0].name");
}

#[test]
fn api_webhooks_must_be_http_urls() {
    let (key, line, msg) = invalid("[api]\ntoken_env = \"T\"\nwebhooks = [\"ftp://pager\"]\n");
    assert_eq!((key.as_str(), line), ("api.webhooks[0]", Some(3)));
    assert!(msg.contains("not an http:// or https:// URL"), "{msg}");
    let c = load("[api]\ntoken_env = \"T\"\nwebhooks = [\"http://127.0.0.1:9/hook\"]\n").unwrap();
    assert_eq!(c.api.unwrap().listen.to_string(), "127.0.0.1:8089");
}

#[test]
fn the_event_log_is_kept_90_days_unless_keep_log_says_otherwise() {
    assert_eq!(load("").unwrap().keep_log, Duration::from_secs(90 * 86_400));
    let c = load("[service]\nkeep_log = \"2w\"").unwrap();
    assert_eq!(c.keep_log, Duration::from_secs(14 * 86_400));
    let (key, line, msg) = invalid("[service]\nkeep_log = \"ninety days\"");
    assert_eq!((key.as_str(), line), ("service.keep_log", Some(2)));
    assert!(msg.contains("ninety days") && msg.contains("90d"), "{msg}");
    let (key, _, msg) = invalid("[service]\nkeep_log = \"10m\"");
    assert_eq!(key, "service.keep_log");
    assert!(msg.contains("at least 1h"), "{msg}");
}

#[test]
fn a_pool_name_is_letters_digits_and_few_signs() {
    for good in ["pbx-c", "PBX_1", "hq.example", "7", &"a".repeat(63)] {
        let text = format!("[[pbx]]\nname = \"{good}\"\nkind = \"asterisk\"\naddress = \"x\"\n");
        load(&text).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    for bad in [
        "",
        "-pbx",
        "pbx a",
        "pbx\\\"a",
        "pbx\\na",
        "pbx{a}",
        "pbx/a",
        &"a".repeat(64),
    ] {
        let text = format!("[[pbx]]\nname = \"{bad}\"\nkind = \"asterisk\"\naddress = \"x\"\n");
        let (key, line, msg) = invalid(&text);
        assert_eq!((key.as_str(), line), ("pbx[0].name", Some(2)), "{bad}");
        assert!(msg.contains("letters, digits"), "{bad}: {msg}");
    }
}

/// The messages of an `on_timeout`, a policy pattern and the API's token that cannot be used,
/// word for word: they are what an operator reads.
#[test]
fn messages_of_destinations_patterns_and_the_token() {
    for (bad, want) in [
        (
            "",
            "is empty: give `exten:EXTEN@CONTEXT`, a `sip:` URI or a dial string",
        ),
        ("PJSIP/a b", "`PJSIP/a b` contains white space"),
        (
            "exten:0",
            "`exten:0`: write an extension as `exten:EXTEN@CONTEXT`",
        ),
        (
            "sip:operator",
            "`sip:operator`: a SIP URI needs a user and a host, like sip:operator@example.com",
        ),
        (
            "operator",
            "`operator` is neither `exten:EXTEN@CONTEXT`, a `sip:` URI nor a dial string like `PJSIP/operator`",
        ),
    ] {
        let (key, _, msg) = invalid(&format!("[park]\non_timeout = \"{bad}\""));
        assert_eq!((key.as_str(), msg.as_str()), ("park.on_timeout", want));
    }
    let (_, _, msg) =
        invalid("[[policy]]\nname = \"x\"\nenable_call_park = true\npatterns = [\"(\"]");
    assert!(
        msg.starts_with("policy `x`: pattern `(` is not a valid regex: "),
        "{msg}"
    );

    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, "too short\n").unwrap();
    let missing = dir.path().join("missing");
    let token_error = |api: &str| {
        let c = load(&format!("[api]\n{api}\n")).unwrap();
        let mut e = c.check_secrets();
        e.retain(|i| i.key == "api.token_env");
        assert_eq!(e.len(), 1, "{api}: {e:?}");
        e.remove(0).message
    };
    assert_eq!(
        token_error("token_env = \"T\"\ntoken_file = \"t\""),
        "set either token_env or token_file, not both"
    );
    assert_eq!(
        token_error(""),
        "set token_env or token_file: the API needs a bearer token"
    );
    assert_eq!(
        token_error("token_env = \"CALLPARK_TEST_TOKEN_NOT_SET\""),
        "environment variable `CALLPARK_TEST_TOKEN_NOT_SET` (token_env) is not set"
    );
    let msg = token_error(&format!("token_file = \"{}\"", missing.display()));
    assert!(
        msg.starts_with(&format!("cannot read token_file {}: ", missing.display())),
        "{msg}"
    );
    assert_eq!(
        token_error(&format!("token_file = \"{}\"", short.display())),
        "the bearer token is shorter than 16 characters"
    );
}

/// Park and page: off unless `page` names a destination; `page_repeat` 0 to 5, `page_interval`
/// 5 s to 5 min; a lot pages on its own, or not at all with `page = "none"`.
#[test]
fn park_and_page_settings_and_their_bounds() {
    let c = load("").unwrap();
    assert!(c.park.page.is_none());
    assert_eq!(c.park.page_repeat, 0);
    assert_eq!(c.park.page_interval, Duration::from_secs(30));
    let c = load("[park]\npage = \"exten:8000@paging\"\npage_repeat = 5\npage_interval = \"5m\"")
        .unwrap();
    assert_eq!(
        c.park.page,
        Some(Destination::parse("exten:8000@paging").unwrap())
    );
    assert_eq!(c.park.page_repeat, 5);
    assert_eq!(c.park.page_interval, Duration::from_secs(300));
    let (key, line, msg) = invalid("[park]\npage_repeat = 6");
    assert_eq!((key.as_str(), line), ("park.page_repeat", Some(2)));
    assert!(msg.contains("0 to 5"), "{msg}");
    for bad in ["4s", "301s"] {
        let (key, _, msg) = invalid(&format!("[park]\npage_interval = \"{bad}\""));
        assert_eq!(key, "park.page_interval");
        assert!(msg.contains("5s to 5m"), "{msg}");
    }
    let (key, _, msg) = invalid("[park]\npage = \"exten:8000\"");
    assert_eq!(key, "park.page");
    assert!(msg.contains("exten:"), "{msg}");
    let c = load(
        "[park]\npage = \"exten:8000@paging\"\n\
         [[lot]]\nname = \"quiet\"\npage = \"none\"\n\
         [[lot]]\nname = \"dock\"\npage = \"PJSIP/dock-speaker\"\npage_repeat = 2\n\
         [[orbit_range]]\nname = \"q\"\nfirst = \"800\"\nlast = \"809\"\npool = \"pbx-a\"\nlot = \"quiet\"\n\
         [[orbit_range]]\nname = \"d\"\nfirst = \"810\"\nlast = \"819\"\npool = \"pbx-a\"\nlot = \"dock\"",
    )
    .unwrap();
    let lot = |n: &str| &c.lots.iter().find(|l| l.name == n).unwrap().park;
    assert!(lot("quiet").page.is_none());
    let dock = lot("dock");
    assert_eq!(
        dock.page,
        Some(Destination::Dial("PJSIP/dock-speaker".into()))
    );
    assert_eq!(dock.page_repeat, 2);
    let (key, _, _) = invalid(
        "[[lot]]\nname = \"dock\"\npage_repeat = 9\n\
         [[orbit_range]]\nname = \"d\"\nfirst = \"810\"\nlast = \"819\"\npool = \"pbx-a\"\nlot = \"dock\"",
    );
    assert_eq!(key, "lot[0].page_repeat");
}

/// Several nodes: `[service] node` names this node, `[[pbx]] prefer` a pool's home; both are
/// names like a pool's, and a bad one is named with its key and line.
#[test]
fn node_names_and_a_pools_home() {
    let c = load("[service]\nnode = \"node-a\"\n\n[[pbx]]\nname = \"pbx-c\"\nkind = \"asterisk\"\naddress = \"x\"\nprefer = \"node-b\"\n").unwrap();
    assert_eq!(c.service.node.as_deref(), Some("node-a"));
    let c3 = c.pbx.iter().find(|p| p.name == "pbx-c").unwrap();
    assert_eq!(c3.prefer.as_deref(), Some("node-b"));
    assert!(
        c.pbx
            .iter()
            .filter(|p| p.name != "pbx-c")
            .all(|p| p.prefer.is_none())
    );

    let (key, line, msg) = invalid("[service]\nnode = \"node a\"");
    assert_eq!((key.as_str(), line), ("service.node", Some(2)));
    assert!(msg.contains("`node a` is not a node name"), "{msg}");
    let (key, line, msg) =
        invalid("[[pbx]]\nname = \"pbx-c\"\nkind = \"asterisk\"\naddress = \"x\"\nprefer = \"\"\n");
    assert_eq!((key.as_str(), line), ("pbx[0].prefer", Some(5)));
    assert!(msg.contains("not a node name"), "{msg}");
}
