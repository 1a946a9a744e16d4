use super::*;
use crate::import::lync::record::read;

fn one(text: &str) -> Vec<(String, Vec<Record>)> {
    vec![("x.csv".to_string(), read(text, "x.csv").unwrap())]
}

fn orbit_err(start: &str, end: &str, extra: &str) -> String {
    let t = format!(
        "\"Identity\",\"NumberRangeStart\",\"NumberRangeEnd\",\"CallParkServiceId\"{}\r\n\"CPO\",\"{start}\",\"{end}\",\"ApplicationServer:pool01.contoso.com\"{}\r\n",
        if extra.is_empty() { "" } else { ",\"Type\"" },
        if extra.is_empty() {
            String::new()
        } else {
            format!(",\"{extra}\"")
        }
    );
    orbits(&one(&t)).unwrap_err().to_string()
}

#[test]
fn orbit_ranges_outside_lyncs_format_are_refused_with_record_and_field() {
    for (start, end, field, what) in [
        ("*100", "*199", "NumberRangeStart", "above 100"),
        ("0700", "0799", "NumberRangeStart", "starts with 0"),
        ("*7000", "*70999", "NumberRangeEnd", "same number of digits"),
        ("*7000", "#7099", "NumberRangeEnd", "same prefix"),
        ("7099", "7000", "NumberRangeEnd", "is above last"),
        (
            "1234567890",
            "1234567899",
            "NumberRangeStart",
            "too many digits",
        ),
        ("70a0", "7099", "NumberRangeStart", "not a digit"),
        (
            "100000000",
            "199999999",
            "NumberRangeEnd",
            "at most 1000000",
        ),
    ] {
        let e = orbit_err(start, end, "");
        assert!(
            e.starts_with(&format!("x.csv:2: Get-CsCallParkOrbit `CPO`: {field}: ")),
            "{e}"
        );
        assert!(e.contains(what), "{start}-{end}: {e}");
    }
    assert!(
        orbit_err("7000", "7099", "Pickup")
            .contains("Type: `Pickup` is neither CallPark nor GroupPickup")
    );
}

#[test]
fn orbits_name_their_pool_however_lync_wrote_the_service() {
    for (col, v) in [
        ("CallParkServiceId", "ApplicationServer:Pool01.Contoso.com"),
        (
            "CallParkService",
            "service:ApplicationServer:pool01.contoso.com",
        ),
        ("CallParkServerFqdn", "pool01.contoso.com"),
    ] {
        let t = format!(
            "\"Identity\",\"NumberRangeStart\",\"NumberRangeEnd\",\"{col}\"\r\n\"CPO\",\"*1000\",\"*1999\",\"{v}\"\r\n"
        );
        let o = orbits(&one(&t)).unwrap();
        assert_eq!(o[0].service, "pool01.contoso.com");
        assert!(!o[0].group_pickup);
    }
    let e = orbits(&one(
        "\"Identity\",\"NumberRangeStart\",\"NumberRangeEnd\",\"CallParkServiceId\"\r\n\"CPO\",\"*1000\",\"*1999\",\"Registrar:pool01.contoso.com\"\r\n",
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("CallParkServiceId: `Registrar:pool01.contoso.com` is a Registrar service"),
        "{e}"
    );
    let e = orbits(&one(
        "\"Identity\",\"NumberRangeStart\",\"NumberRangeEnd\"\r\n\"CPO\",\"*1000\",\"*1999\"\r\n",
    ))
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "x.csv:2: Get-CsCallParkOrbit `CPO`: CallParkServiceId: missing: every Get-CsCallParkOrbit object has it"
    );
}

#[test]
fn a_record_without_identity_is_the_wrong_file() {
    let e = orbits(&one(
        "\"Pattern\",\"Translation\"\r\n\"^(\\d+)$\",\"+$1\"\r\n",
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("x.csv:2: a record without an Identity"),
        "{e}"
    );
}

fn cps_err(field: &str, value: &str) -> String {
    let t = format!("\"Identity\",\"{field}\"\r\n\"Site:Redmond\",\"{value}\"\r\n");
    cps(&one(&t)).unwrap_err().to_string()
}

#[test]
fn cps_values_outside_lyncs_bounds_are_refused() {
    for (field, value, what) in [
        (
            "CallPickupTimeoutThreshold",
            "00:00:09",
            "out of Lync's bounds, 00:00:10 to 00:10:00",
        ),
        (
            "CallPickupTimeoutThreshold",
            "00:10:01",
            "out of Lync's bounds",
        ),
        ("CallPickupTimeoutThreshold", "90", "not a time span"),
        ("CallPickupTimeoutThreshold", "00:61:00", "not a time span"),
        (
            "MaxCallPickupAttempts",
            "0",
            "0 is out of Lync's bounds, 1 to 10",
        ),
        ("MaxCallPickupAttempts", "11", "11 is out of Lync's bounds"),
        ("MaxCallPickupAttempts", "two", "not a whole number"),
        ("EnableMusicOnHold", "yes", "`yes` is not True or False"),
        ("OnTimeoutURI", "tel:+14255550100", "not a SIP address"),
        ("OnTimeoutURI", "sip:operator", "not a SIP address"),
    ] {
        let e = cps_err(field, value);
        assert_eq!(
            e.split(": ").take(3).collect::<Vec<_>>(),
            ["x.csv:2", "Get-CsCpsConfiguration `Site:Redmond`", field],
            "{e}"
        );
        assert!(e.contains(what), "{field} {value}: {e}");
    }
    for id in ["Tag:Parkers", "Redmond", "Site:"] {
        let e = cps(&one(&format!("\"Identity\"\r\n\"{id}\"\r\n")))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "x.csv:2: Get-CsCpsConfiguration `{id}`: Identity: Call Park service settings are Global, Site:<name> or Service:ApplicationServer:<pool FQDN>"
            )
        );
    }
}

#[test]
fn cps_reads_timespans_scopes_and_the_null_attempts() {
    let c = cps(&one(
        "\"Identity\",\"CallPickupTimeoutThreshold\",\"EnableMusicOnHold\",\"MaxCallPickupAttempts\",\"OnTimeoutURI\"\r\n\
         \"Global\",\"00:10:00\",\"False\",,\"SIP:rgs@contoso.com\"\r\n\
         \"Service:ApplicationServer:Pool02.contoso.com\",\"00:00:10.5000000\",\"True\",\"10\",\r\n",
    ))
    .unwrap();
    assert_eq!(c[0].scope, CpsScope::Global);
    assert_eq!(c[0].pickup_timeout, Some(Duration::from_secs(600)));
    assert_eq!(c[0].music_on_hold, Some(false));
    assert_eq!(c[0].attempts, Attempts::Null);
    assert_eq!(c[0].on_timeout.as_ref().unwrap().0, "sip:rgs@contoso.com");
    assert_eq!(c[1].scope, CpsScope::Service("pool02.contoso.com".into()));
    assert_eq!(c[1].pickup_timeout, Some(Duration::from_millis(10_500)));
    assert_eq!(c[1].attempts, Attempts::Value(10));
    assert!(c[1].on_timeout.is_none());
    let c = cps(&one("\"Identity\"\r\n\"site:Dublin\"\r\n")).unwrap();
    assert_eq!(c[0].scope, CpsScope::Site("Dublin".into()));
    assert_eq!(c[0].attempts, Attempts::Absent);
}

#[test]
fn policies_read_their_scope_and_switch() {
    let v = voice_policies(&one(
        "\"Identity\",\"EnableCallPark\"\r\n\"Global\",\"False\"\r\n\"Site:Redmond\",\"True\"\r\n\"Tag:Parkers\",\"True\"\r\n",
    ))
    .unwrap();
    let scopes: Vec<_> = v.iter().map(|p| (&p.scope, p.enable_call_park)).collect();
    assert_eq!(
        scopes,
        [
            (&PolicyScope::Global, false),
            (&PolicyScope::Site("Redmond".into()), true),
            (&PolicyScope::Tag("Parkers".into()), true)
        ]
    );
    let e = voice_policies(&one(
        "\"Identity\",\"EnableCallPark\"\r\n\"Global\",\"\"\r\n",
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.ends_with("EnableCallPark: missing: every Get-CsVoicePolicy object has it"),
        "{e}"
    );
    let e = teams_policies(&one(
        "\"Identity\",\"AllowCallPark\"\r\n\"Site:Redmond\",\"True\"\r\n",
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("Global or Tag:<name>"), "{e}");
}

#[test]
fn teams_values_outside_teams_bounds_are_refused() {
    let t = |start: &str, end: &str, timeout: &str| {
        teams_policies(&one(&format!(
            "\"Identity\",\"AllowCallPark\",\"PickupRangeStart\",\"PickupRangeEnd\",\"ParkTimeoutSeconds\"\r\n\"Tag:Sales\",\"True\",\"{start}\",\"{end}\",\"{timeout}\"\r\n"
        )))
    };
    let ok = t("500", "1500", "600").unwrap();
    assert_eq!((ok[0].range, ok[0].park_timeout.0), ((500, 1500), 600));
    for (s, e, to, field, what) in [
        (
            "9",
            "99",
            "300",
            "PickupRangeStart",
            "9 is out of Teams' bounds, 10 to 9999",
        ),
        (
            "10",
            "10000",
            "300",
            "PickupRangeEnd",
            "10000 is out of Teams' bounds",
        ),
        (
            "50",
            "50",
            "300",
            "PickupRangeEnd",
            "must be smaller than PickupRangeEnd 50",
        ),
        (
            "10",
            "99",
            "119",
            "ParkTimeoutSeconds",
            "119 is out of Teams' bounds, 120 to 1800",
        ),
        ("10", "99", "1801", "ParkTimeoutSeconds", "1801 is out"),
    ] {
        let err = t(s, e, to).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "x.csv:2: Get-CsTeamsCallParkPolicy `Tag:Sales`: {field}: "
            )) && err.contains(what),
            "{err}"
        );
    }
    // Teams' defaults when the export leaves them out.
    let d = teams_policies(&one(
        "\"Identity\",\"AllowCallPark\"\r\n\"Global\",\"False\"\r\n",
    ))
    .unwrap();
    assert_eq!((d[0].range, d[0].park_timeout.0), ((10, 99), 300));
}
