//! An imported Lync configuration on a real PBX: `callpark import lync` on exports laid out as
//! the cmdlets write them (tests/data/lync-import/e2e/), with the FreeSWITCH testbed's
//! `[[pbx]]` given as `--base`, run as it came out: a blind-transferred call is parked on an
//! imported orbit and rung back to its parker at the imported CallPickupTimeoutThreshold.

use callpark_testkit as support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::testbed::*;
use support::*;

#[tokio::test]
async fn an_imported_lync_configuration_parks_and_rings_back_on_freeswitch() {
    let pbx = FreeswitchTestbed::take().await;
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/lync-import/e2e");
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.toml");
    std::fs::write(
        &base,
        format!(
            "[service]\ndata_dir = \"{{data_dir}}\"\n\n[[pbx]]\nname = \"pbx-b\"\nkind = \"freeswitch\"\naddress = \"{}\"\npassword = \"{}\"\noutbound = \"127.0.0.1:8041\"\n",
            fs::esl_addr(),
            fs::fb("ESL_PASSWORD")
        ),
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["import", "lync", "--orbits"])
        .arg(data.join("orbits.csv"))
        .arg("--cps")
        .arg(data.join("cps.csv"))
        .arg("--voice-policies")
        .arg(data.join("voice-policies.csv"))
        .args(["--map", "pool02.contoso.com=pbx-b", "--base"])
        .arg(&base)
        .output()
        .expect("run callpark import lync");
    let config = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{config}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(config.contains("pickup_timeout = \"10s\""), "{config}");

    let cp = Callpark::start_config(&config).await;
    let mark = pbx.mark();
    let caller = pbx.park_by_transfer("alice", "Carol", "5551234").await;
    // The first of the imported orbits, 601-620.
    let call = cp.wait_parked_on("601").await;
    assert_eq!(
        call.deadline - call.parked_at,
        10_000,
        "the imported CallPickupTimeoutThreshold"
    );
    let ringback = leg_id(&caller.id, "rb1");
    let rb = pbx.wait_leg(mark, &ringback).await;
    assert!(
        pbx.dials(&rb.name, "to-dev-alice"),
        "the ringback dials the parker's own phone: {}",
        rb.name
    );
    pbx.wait_bridged(
        "the parked call bridged to the parker",
        &caller.id,
        &ringback,
    )
    .await;
    let kinds = kinds_until(&cp, &caller.id, "reconnected", Duration::from_secs(5)).await;
    assert_eq!(kinds, ["parked", "ringback_started", "reconnected"]);
}
