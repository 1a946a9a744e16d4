//! The attendant console in a real headless Chromium (Debian's package) against `callpark run`
//! on each testbed: a parked call appears, Retrieve sends it to the attendant's own extension,
//! the call is bridged there and the row goes. Written once against [`Testbed`] and run on both
//! PBXes; the screenshots are kept in `target/test-artifacts/console-<pbx>.png`.
//! `contrib/test-all.sh` installs Chromium and the driver (playwright-core,
//! tests/console/package.json); without them this test fails.

use callpark_testkit as support;

use std::time::Duration;

use serde_json::Value;
use support::testbed::*;
use support::*;

const TOKEN: &str = "console-test-token-0123456789";

async fn a_receptionist_sees_the_parked_call_and_retrieves_it(pbx: &impl Testbed) {
    let repo = env!("CARGO_MANIFEST_DIR");
    let driver = format!("{repo}/tests/console/drive.mjs");
    assert!(
        std::path::Path::new(&format!(
            "{repo}/tests/console/node_modules/playwright-core"
        ))
        .exists(),
        "playwright-core is missing: run `npm install --prefix tests/console` (contrib/test-all.sh does)"
    );
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "Chromium is missing: apt-get install chromium (contrib/test-all.sh does)"
    );
    let (api_toml, port, _api_dir) = api_table(TOKEN);
    let cp = Callpark::start(&Setup {
        extra: api_toml,
        ..pbx.setup("pickup_timeout = \"60s\"\n")
    })
    .await;
    let caller = pbx.park_by_transfer("alice", "Carol", "5551234").await;
    let orbit = pbx.orbit(1);
    cp.wait_parked_on(&orbit).await;
    // The testbeds' pools, as the console's lot table names them.
    let pool = match pbx.name() {
        "asterisk" => "pbx-a",
        _ => "pbx-b",
    };

    let shots = format!("{repo}/target/test-artifacts");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = format!("{shots}/console-{}.png", pbx.name());
    // The attendant's own extension: one of the testbed's phones, which answers.
    let to = pbx.exten("answer");
    let url = format!("http://127.0.0.1:{port}/#token={TOKEN}&to={to}");
    let (orbit_arg, shot_arg) = (orbit.clone(), shot.clone());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(driver)
            .args([url.as_str(), orbit_arg.as_str(), shot_arg.as_str()])
            .output()
            .expect("run node")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "the console in Chromium: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(
        out.stdout
            .split(|b| *b == b'\n')
            .rfind(|l| l.starts_with(b"{"))
            .expect("the driver's JSON line"),
    )
    .unwrap();
    let row = seen["row"].as_str().unwrap();
    assert!(
        row.starts_with(&format!("{orbit} general Carol")) && row.contains("parked"),
        "{row}"
    );
    assert!(
        seen["lots"]
            .as_str()
            .unwrap()
            .contains(&format!("general {pool} 1 ")),
        "{seen}"
    );
    assert_eq!(seen["status"], "live");
    assert_eq!(seen["gone"], true);
    // Bridged at her extension, and logged so.
    cp.wait_log(&caller.id, "retrieved", Duration::from_secs(5))
        .await;
    let row = cp.log_row(&caller.id, "retrieved").await;
    assert!(row.detail.contains(&to), "{}", row.detail);
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 5_000,
        "a real screenshot"
    );
}

#[tokio::test]
async fn asterisk_a_receptionist_sees_the_parked_call_and_retrieves_it_to_her_extension() {
    a_receptionist_sees_the_parked_call_and_retrieves_it(&AsteriskTestbed::take().await).await;
}

#[tokio::test]
async fn freeswitch_a_receptionist_sees_the_parked_call_and_retrieves_it_to_her_extension() {
    a_receptionist_sees_the_parked_call_and_retrieves_it(&FreeswitchTestbed::take().await).await;
}
