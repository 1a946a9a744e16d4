//! The ARI event codec on real frames captured from Asterisk 22.10.1
//! (`tests/data/asterisk/captured`).

use std::path::PathBuf;

use callpark::pbx::asterisk::model::{AriEvent, decode_event, endpoint_of};

/// The captured events, one JSON file each.
fn captured() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/asterisk/captured")
}

fn event(name: &str) -> AriEvent {
    let path = captured().join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    decode_event(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_captured_frame_decodes() {
    let dir = captured();
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let ev = decode_event(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path.file_stem().unwrap().to_str().unwrap();
        let kind = name.rsplit_once('-').unwrap().0;
        let modelled = matches!(
            kind,
            "StasisStart"
                | "StasisEnd"
                | "ChannelDestroyed"
                | "ChannelHangupRequest"
                | "ChannelStateChange"
                | "ChannelEnteredBridge"
                | "ChannelLeftBridge"
                | "BridgeDestroyed"
        );
        assert_eq!(ev != AriEvent::Other, modelled, "{name}: {ev:?}");
        n += 1;
    }
    assert!(n >= 25, "only {n} frames");
}

#[test]
fn park_and_retrieve_stasis_starts() {
    let AriEvent::StasisStart {
        args,
        channel,
        replace_channel,
    } = event("StasisStart-1.json")
    else {
        panic!()
    };
    assert_eq!(args, vec!["park"]);
    assert_eq!(channel.id, "1795360454.4");
    assert_eq!(
        (channel.caller.name.as_str(), channel.caller.number.as_str()),
        ("Alice", "100")
    );
    assert_eq!(
        endpoint_of(&channel.name).as_deref(),
        Some("Local/answer@phones")
    );
    assert!(replace_channel.is_none());
    let AriEvent::StasisStart { args, .. } = event("StasisStart-2.json") else {
        panic!()
    };
    assert_eq!(args, vec!["retrieve", "701"]);
}

#[test]
fn ringback_no_answer_is_a_destroyed_channel_with_cause_19() {
    let AriEvent::ChannelDestroyed {
        channel,
        cause,
        cause_txt,
    } = event("ChannelDestroyed-1.json")
    else {
        panic!()
    };
    assert_eq!(cause, 19);
    assert_eq!(cause_txt, "User alerting, no answer");
    assert_eq!(channel.caller.name, "Parked 701");
}

#[test]
fn bridge_events_carry_the_bridge_members() {
    let AriEvent::ChannelEnteredBridge { bridge, channel } = event("ChannelEnteredBridge-2.json")
    else {
        panic!()
    };
    assert!(bridge.channels.contains(&channel.id));
    assert_eq!(bridge.channels.len(), 2, "{bridge:?}");
}

mod robustness {
    use super::*;
    use proptest::prelude::*;

    fn frames() -> Vec<String> {
        let dir = captured();
        let mut v: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect();
        v.sort();
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// A frame cut short (a websocket message lost its tail) is an error, never half an
        /// event taken for a whole one; the intact frame decodes.
        #[test]
        fn truncated_real_frames_are_errors(
            pick in any::<prop::sample::Index>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let frames = frames();
            let f = frames[pick.index(frames.len())].trim_end();
            prop_assert!(decode_event(f).is_ok());
            let n = cut.index(f.len());
            if f.is_char_boundary(n) {
                prop_assert!(decode_event(&f[..n]).is_err(), "{} bytes of {}", n, f.len());
            }
        }

        #[test]
        fn endpoint_of_takes_any_name(name in ".{0,40}") {
            if let Some(ep) = endpoint_of(&name) {
                prop_assert!(name.starts_with(&ep));
                prop_assert!(ep.contains('/'));
            }
        }
    }
}
