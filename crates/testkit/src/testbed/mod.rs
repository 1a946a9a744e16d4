//! Either testbed behind one interface, so that an end-to-end scenario is written once and run
//! on both PBXes: the phones of the testbed's dialplan (a caller and a parker, a retriever, the
//! park code dialled directly), what the PBX shows of its channels and bridges (gone, bridged,
//! on hold music, a prompt heard), the busy lamps, and the connection callpark keeps to it.
//!
//! Phones are Local channels into `phones` on Asterisk and loopback channels into the test
//! context on FreeSWITCH; a park "from a call" is the PBX's own blind transfer (AMI
//! BlindTransfer of a bridged pair, `uuid_transfer` of the caller as a REFER does it).
//!
//! One thing per file: the trait and what a scenario holds (here), the Asterisk testbed
//! (`asterisk`), the FreeSWITCH testbed (`freeswitch`).

use std::future::Future;
use std::time::Duration;

use super::fs::Esl;
use super::phone::PhoneOpts;
use super::*;

mod asterisk;
mod freeswitch;

pub use self::asterisk::AsteriskTestbed;
pub use self::freeswitch::FreeswitchTestbed;

const S: fn(u64) -> Duration = Duration::from_secs;

/// A channel of the PBX as a scenario holds it: its id, and its name on Asterisk (whose log
/// speaks of channels by name; FreeSWITCH's speaks of them by uuid, so there it is the id).
#[derive(Clone, Debug)]
pub struct Chan {
    pub id: String,
    pub name: String,
}

/// A leg callpark originated (a ringback, a fallback), as the PBX shows it.
#[derive(Clone, Debug)]
pub struct Leg {
    /// The channel name: the endpoint callpark dialled.
    pub name: String,
    pub caller_name: String,
    pub caller_number: String,
}

/// The hold music a scenario expects on a parked call.
#[derive(Clone, Copy)]
pub enum Music<'a> {
    /// The PBX's default class.
    Default,
    /// A class of the PBX (Asterisk's musiconhold.conf, a FreeSWITCH local_stream).
    Class(&'a str),
}

/// The PBX under a testbed, for the few checks that only mean something on one of them.
pub enum Side<'a> {
    Asterisk(&'a Ari, &'a Ami),
    Freeswitch(&'a Esl),
}

/// What a scenario does to and reads from a PBX testbed. Callpark itself (start, kill, freeze,
/// spawn, its store and log) is [`Callpark`]; [`Testbed::setup`] is its configuration here.
///
/// Its futures are `Send`: a benchmark drives one testbed from the tasks of a multi-threaded
/// runtime (benches/volume.rs).
pub trait Testbed: Sync {
    /// `asterisk` or `freeswitch`.
    fn name(&self) -> &'static str;
    fn side(&self) -> Side<'_>;

    /// A configuration with this PBX's pool (every orbit of the testbed's dialplan) and `park`.
    fn setup(&self, park: &str) -> Setup;
    /// The pool's orbits limited to the `first`-th ..= `last`-th.
    fn limit_orbits(&self, setup: &mut Setup, first: u32, last: u32);
    /// The `n`-th orbit number: 701... on Asterisk, 601... on FreeSWITCH.
    fn orbit(&self, n: u32) -> String;
    /// The pattern a policy names the testbed's `dev-` phones (parkers) by.
    fn phones_pattern(&self) -> &'static str;
    /// The endpoint callpark records as the parker for phone `dev-<phone>`.
    fn parker(&self, phone: &str) -> String;
    /// An `exten:` destination for an extension of the phones' context (`answer`, `noanswer`).
    fn exten(&self, exten: &str) -> String;
    /// Whether `name`, a leg callpark originated, dials the testbed's extension `exten`
    /// (`to-dev-alice` for alice's phone, `answer`).
    fn dials(&self, name: &str, exten: &str) -> bool;
    /// The pool's `sip_endpoint`, through which SIP URIs are dialled: the testbed's endpoint
    /// `alice` on Asterisk, the sofia profile `internal` on FreeSWITCH.
    fn sip_endpoint(&self, setup: &mut Setup);
    /// The contact of the SIP phone `alice`: the tests' own (`sip`), or PJSIP's (`phone`).
    fn sip_alice_contact(&self) -> String;
    /// The SIP address a phone dials an extension of the testbed at (`park`, an orbit).
    fn sip_uri(&self, exten: &str) -> String;
    /// PJSIP's phone `alice` on this PBX: Asterisk's endpoint has a static contact,
    /// FreeSWITCH's directory user registers.
    fn alice_opts(&self) -> PhoneOpts;
    /// Whether `endpoint`, as callpark records a parker and rings it back, is the SIP phone
    /// `alice`.
    fn is_alice(&self, endpoint: Option<&str>) -> bool;
    /// A dial string of this PBX that calls the SIP phone `alice` (a page's destination).
    fn alice_dial(&self) -> String;
    /// The address callpark connects to, and the configuration going through `addr` instead.
    fn pbx_addr(&self) -> String;
    fn connect_through(&self, setup: &mut Setup, port: u16);
    /// How callpark's log names this connection (`ARI`, `FreeSWITCH`).
    fn link(&self) -> &'static str;

    /// A position in what the PBX reported so far; checks after it look only at what follows.
    fn mark(&self) -> usize;

    /// Every channel hung up: a scenario's next step starts clean.
    fn reset(&self) -> impl Future<Output = ()> + Send;
    /// A call between `dev-<phone>` and a caller (`name` <`number`>), which the phone then
    /// blind-transfers to the park code. Returns the caller, the channel parked.
    fn park_by_transfer(
        &self,
        phone: &str,
        name: &str,
        number: &str,
    ) -> impl Future<Output = Chan> + Send;
    /// A caller (`name` <`number`>) calls the SIP phone `alice`: the PBX's own channel,
    /// bridged to the phone once it answers.
    fn call_alice(&self, name: &str, number: &str) -> impl Future<Output = ()> + Send;
    /// The same, from a caller whose own side echoes what it hears: whoever talks to it
    /// hears their own audio back, so RTP flows both ways on its call.
    fn call_alice_echo(&self, name: &str, number: &str) -> impl Future<Output = ()> + Send;
    /// The PBX itself sends the channel `ch` to `exten` of the phones' context, as an
    /// operator panel does (AMI Redirect, `uuid_transfer`): no phone's transfer.
    fn redirect(&self, ch: &Chan, exten: &str) -> impl Future<Output = ()> + Send;
    /// Another phone dials `orbit`; returns the retrieving channel.
    fn dial_orbit(
        &self,
        orbit: &str,
        name: &str,
        number: &str,
    ) -> impl Future<Output = Chan> + Send;
    /// A phone dials the park code itself; returns its channel in callpark's hands.
    fn dial_park(&self, name: &str, number: &str) -> impl Future<Output = Chan> + Send;
    /// How the simulated phone `dev-<phone>` behaves from now on: `answer`, `noanswer`,
    /// `busy`, `answerafter3`.
    fn set_phone(&self, phone: &str, mode: &str) -> impl Future<Output = ()> + Send;
    fn hang_up(&self, id: &str) -> impl Future<Output = ()> + Send;
    /// Every channel the PBX has now: its id and its name (on FreeSWITCH too).
    fn channels(&self) -> impl Future<Output = Vec<(String, String)>> + Send;
    fn exists(&self, id: &str) -> impl Future<Output = bool> + Send;
    /// Whether `a` and `b` are bridged to each other now.
    fn bridged(&self, a: &str, b: &str) -> impl Future<Output = bool> + Send;
    /// Whether a channel of the SIP phone `alice` is bridged to another channel now: the
    /// PBX has joined the call the phone answered, so a transfer from the phone has a peer
    /// to move (a REFER sent before that is refused with a 400 NOTIFY by Asterisk).
    fn phone_bridged(&self) -> impl Future<Output = bool> + Send;
    /// Waits (15 s) for the leg `id` callpark originates, created after `mark`.
    fn wait_leg(&self, mark: usize, id: &str) -> impl Future<Output = Leg> + Send;
    /// The leg `id` rings, not answered yet.
    fn ringing(&self, id: &str) -> impl Future<Output = bool> + Send;
    /// The leg `id` is answered and waits in callpark's hands.
    fn answered_waiting(&self, id: &str) -> impl Future<Output = bool> + Send;
    /// The busy lamp of `orbit` as the PBX holds it (Asterisk), or as callpark last set it
    /// since `mark` (FreeSWITCH keeps no presence of its own): `Some(lit)`.
    fn lamp(&self, mark: usize, orbit: &str) -> impl Future<Output = Option<bool>> + Send;
    /// Whether hold music of that kind started on `ch` since `mark`.
    fn music_started(
        &self,
        mark: usize,
        ch: &Chan,
        music: Music<'_>,
    ) -> impl Future<Output = bool> + Send;
    /// Whether any playback of hold music started on `ch` since `mark`.
    fn any_music(&self, mark: usize, ch: &Chan) -> impl Future<Output = bool> + Send;
    /// Whether `ch` heard that the orbit it dialled is empty.
    fn heard_orbit_empty(&self, ch: &Chan) -> bool;
    /// Whether `ch` heard that parking failed.
    fn heard_parking_failed(&self, ch: &Chan) -> bool;

    /// Waits (10 s) until `a` and `b` are bridged.
    fn wait_bridged(&self, what: &str, a: &str, b: &str) -> impl Future<Output = ()> + Send {
        async move {
            wait_for(what, S(10), || async {
                self.bridged(a, b).await.then_some(())
            })
            .await
        }
    }

    /// Waits (10 s) until the phone's answered call is bridged by the PBX: what a person
    /// hears as the other side talking, before pressing a transfer key.
    fn wait_phone_bridged(&self) -> impl Future<Output = ()> + Send {
        async move {
            wait_for("the phone's call bridged by the PBX", S(10), || async {
                self.phone_bridged().await.then_some(())
            })
            .await
        }
    }

    /// Waits until the channel `id` is gone.
    fn wait_gone(
        &self,
        what: &str,
        id: &str,
        timeout: Duration,
    ) -> impl Future<Output = ()> + Send {
        async move {
            wait_for(what, timeout, || async {
                (!self.exists(id).await).then_some(())
            })
            .await
        }
    }

    /// Waits until the channel `id` is there.
    fn wait_there(
        &self,
        what: &str,
        id: &str,
        timeout: Duration,
    ) -> impl Future<Output = ()> + Send {
        async move {
            wait_for(what, timeout, || async {
                self.exists(id).await.then_some(())
            })
            .await
        }
    }

    /// Waits (5 s) until the busy lamp of `orbit` is lit (or out), as set after `mark`.
    fn wait_lamp(&self, mark: usize, orbit: &str, lit: bool) -> impl Future<Output = ()> + Send {
        async move {
            let what = format!(
                "busy lamp of {orbit} {}",
                if lit { "in use" } else { "off" }
            );
            wait_for(&what, S(5), || async {
                (self.lamp(mark, orbit).await == Some(lit)).then_some(())
            })
            .await
        }
    }

    /// Waits (5 s) until hold music of that kind is on `ch`, started after `mark`.
    fn wait_music(
        &self,
        mark: usize,
        ch: &Chan,
        music: Music<'_>,
    ) -> impl Future<Output = ()> + Send {
        async move {
            let what = match music {
                Music::Default => format!("music on hold on {}", ch.name),
                Music::Class(c) => format!("music on hold of class {c} on {}", ch.name),
            };
            wait_for(&what, S(5), || async {
                self.music_started(mark, ch, music).await.then_some(())
            })
            .await
        }
    }
}

/// The id callpark gives a leg it originates for the parked channel `parked` (`rb1`, `fb`,
/// `ret`): the core's own derivation.
pub fn leg_id(parked: &str, tag: &str) -> String {
    callpark::park::ChannelId::new(parked).leg(tag).to_string()
}

/// The log kinds of a channel, waiting until the last one is `last`.
pub async fn kinds_until(
    cp: &Callpark,
    channel: &str,
    last: &str,
    timeout: Duration,
) -> Vec<String> {
    cp.wait_log(channel, last, timeout).await;
    cp.kinds_of(channel).await
}

/// A configuration's orbit bound, which `Setup` holds as `&'static str`.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}
