//! What a (re)connection finds: the channel listing, the parked calls the core holds checked
//! against it, and the channels that may sit in callpark's hands read in full and reported as
//! their arrival would have been.

use std::collections::HashSet;

use tracing::{debug, warn};

use super::{Chan, FsTranslator, Request, Tag};
use crate::park::{ChannelId, Event};
use crate::pbx::freeswitch::model::{ChannelList, ChannelRow, FsEvent};
use crate::pbx::{Output, PbxEvent};

impl FsTranslator {
    /// `show channels as json` answered.
    pub(super) fn on_list(&mut self, text: &str, out: &mut Output<Request>) {
        match ChannelList::parse(text) {
            Ok(mut list) => {
                // A channel hanging up as it was listed is gone: the reconciliation ends its
                // call, and it is not adopted.
                list.rows.retain(|r| !r.ending());
                self.verify(list, out);
            }
            Err(e) => {
                warn!(pbx = %self.s.pool, "cannot read `show channels as json` ({e}): {}",
                text.chars().take(200).collect::<String>())
            }
        }
    }

    /// A held call the listing left out, read on its own (see [`FsTranslator::verify`]).
    pub(super) fn on_verify(&mut self, id: ChannelId, text: &str, out: &mut Output<Request>) {
        let Some((list, waiting)) = self.listing.as_mut() else {
            return;
        };
        if !waiting.remove(&id) {
            return;
        }
        let row = FsEvent::from_json(text.as_bytes())
            .ok()
            .and_then(|ev| ChannelRow::from_dump(&ev))
            .filter(|r| r.uuid == id.as_str() && !r.ending());
        match row {
            Some(row) => {
                warn!(pbx = %self.s.pool, channel = %id,
                    "`show channels` did not list a parked call that exists; \
                     FreeSWITCH's channel table lags its channels, so the call is kept");
                list.rows.push(row);
            }
            None => debug!(pbx = %self.s.pool, channel = %id, "gone: {}", text.trim()),
        }
        if waiting.is_empty() {
            if let Some((list, _)) = self.listing.take() {
                self.connected(list, out);
            }
        }
    }

    /// A channel that may sit in callpark's hands, read in full.
    pub(super) fn on_dump(&mut self, id: ChannelId, text: &str, out: &mut Output<Request>) {
        match FsEvent::from_json(text.as_bytes()) {
            Ok(ev) => self.on_found(ev, id, out),
            // `-ERR No such channel!`: it ended meanwhile, and its hang-up event tells.
            Err(_) => debug!(pbx = %self.s.pool, channel = %id, "uuid_dump: {}", text.trim()),
        }
    }

    /// The listing is FreeSWITCH's channel table, which its SQL thread fills from events
    /// after the fact (inserts and updates on separate queues), not the channels themselves;
    /// a reconnection in CI found it empty a tenth of a second after a park. Taken at its
    /// word, such a call is ended as "hung up while callpark was away" and its caller left
    /// alone in `park`. So a call the core holds that the listing leaves out is read on its
    /// own (`uuid_dump`, from the session itself) before the reconciliation is reported.
    fn verify(&mut self, list: ChannelList, out: &mut Output<Request>) {
        let listed: HashSet<&str> = list.rows.iter().map(|r| r.uuid.as_str()).collect();
        let missing: HashSet<ChannelId> = self
            .held
            .iter()
            .filter(|id| !listed.contains(id.as_str()))
            .cloned()
            .collect();
        if missing.is_empty() {
            self.connected(list, out);
            return;
        }
        for id in &missing {
            out.request(self.api(format!("uuid_dump {id} json"), Tag::Verify(id.clone())));
        }
        self.listing = Some((list, missing));
    }

    /// The reconciliation: every channel there is, then what may sit in callpark's hands.
    fn connected(&mut self, list: ChannelList, out: &mut Output<Request>) {
        out.events.push(PbxEvent::Connected {
            channels: list
                .rows
                .iter()
                .map(|r| ChannelId::new(r.uuid.clone()))
                .collect(),
        });
        self.adopt(list, out);
    }

    /// What a (re)connection finds: channels bridged by `uuid_bridge` are reported bridged
    /// (the core ends a connecting call on it; any other is none of its business), and the
    /// channels that may sit in callpark's hands (parked, or on the include's music) are
    /// read in full to see whether they do.
    ///
    /// A channel the core holds parked ([`crate::pbx::Held`]) and found still parked or on
    /// the include's music is taken back from its row alone: the core knows its call, so no
    /// [`PbxEvent::Found`] is needed, and its answer and music states are in the row. Only
    /// its SIP Call-ID is not: a REFER with Replaces naming a call held across a reconnection
    /// is taken as a blind transfer.
    fn adopt(&mut self, list: ChannelList, out: &mut Output<Request>) {
        let held = std::mem::take(&mut self.held);
        for row in list.rows {
            let id = ChannelId::new(row.uuid);
            let music = matches!(row.application.as_str(), "playback" | "endless_playback");
            match row.application.as_str() {
                "uuid_bridge" => out.found(Event::Bridged { channel: id }),
                // Already known: a command for it came after this connection opened (a
                // retrieve through the outbound connection can outrun the listing), and what
                // that command set up (a bridge under way, its way back to park armed) is
                // newer than this row.
                "park" | "playback" | "endless_playback"
                    if held.contains(&id) && self.chans.contains_key(&id) =>
                {
                    if let Some(c) = self.chans.get_mut(&id) {
                        c.answered |= row.callstate == "ACTIVE" || row.callstate == "HELD";
                    }
                    self.action(out, "take the call", Some(&id), format!("sched_del {id}"));
                }
                "park" | "playback" | "endless_playback" if held.contains(&id) => {
                    let chan = Chan {
                        answered: row.callstate == "ACTIVE" || row.callstate == "HELD",
                        dialplan_music: music,
                        // What callpark queued on it before the reconnection (an orbit
                        // spoken, then music) may still wait: its bridge flushes it.
                        queued: true,
                        ..Chan::default()
                    };
                    self.take(out, &id, chan);
                }
                "park" | "playback" | "endless_playback" => {
                    let line = format!("uuid_dump {id} json");
                    out.request(self.api(line, Tag::Dump(id)));
                }
                _ => {}
            }
        }
    }

    /// One channel read after a (re)connection, reported as its arrival would have been: a
    /// park or a retrieve the include handed over, or a leg callpark placed that answered.
    fn on_found(&mut self, ev: FsEvent, id: ChannelId, out: &mut Output<Request>) {
        if ev.uuid.as_deref() != Some(id.as_str()) || self.chans.contains_key(&id) {
            return;
        }
        let mut found = Output::default();
        if ev.callpark_leg.as_deref() == Some(id.as_str()) {
            // Parked by its originate's `&park()`: answered, waiting for its bridge.
            if ev.current_application.as_deref() == Some("park") {
                self.chans.insert(
                    id.clone(),
                    Chan {
                        answered: true,
                        ..Chan::default()
                    },
                );
                found.event(Event::Answered { channel: id });
            }
        } else if ev.callpark_leg.is_none()
            // On its way to the include's "callpark is down" path: not ours any more.
            && !ev
                .destination
                .as_deref()
                .is_some_and(|d| d.starts_with("callpark-down-"))
        {
            self.on_park(&ev, id, &mut found);
        }
        out.append_found(found);
    }
}
