//! What a (re)connection finds: callpark's bridges and the channels in the Stasis
//! application, adopted as their arrival would have been reported.

use std::collections::HashSet;

use tracing::info;

use super::{AriTranslator, Request, Tag, Verb};
use crate::park::{ChannelId, Event};
use crate::pbx::Output;
use crate::pbx::asterisk::model::{Bridge, Channel};

impl AriTranslator {
    /// Every channel the translator holds state for.
    pub(super) fn known_channels(&self) -> HashSet<ChannelId> {
        let mut k: HashSet<ChannelId> = self.chans.keys().cloned().collect();
        k.extend(self.lookups.keys().cloned());
        k.extend(self.bridged.keys().cloned());
        k.extend(self.found_bridged.keys().cloned());
        k.extend(self.after.values().map(|a| a.channel().clone()));
        for (a, b) in self.pending_bridges.values() {
            k.insert(a.clone());
            k.insert(b.clone());
        }
        k
    }

    /// callpark's bridges (`cp-<parked channel>`) as a (re)connection finds them. A complete
    /// one is a call connected while callpark was not looking: reported bridged, and its pair
    /// remembered so that one side leaving ends the other, as for a bridge seen to come up.
    /// One with a single channel lost the other side meanwhile: the conversation is over, so
    /// the one left is hung up rather than left alone in a bridge.
    pub(super) fn on_bridges(&mut self, bridges: Vec<Bridge>, out: &mut Output<Request>) {
        self.found_bridged.clear();
        for b in bridges.into_iter().filter(|b| b.id.starts_with("cp-")) {
            for c in &b.channels {
                self.found_bridged
                    .insert(ChannelId::new(c.clone()), b.id.clone());
            }
            match &b.channels[..] {
                [a, c] => {
                    let (a, c) = (ChannelId::new(a.clone()), ChannelId::new(c.clone()));
                    self.bridged.insert(a.clone(), (b.id.clone(), c.clone()));
                    self.bridged.insert(c, (b.id.clone(), a));
                }
                [alone] => {
                    let alone = ChannelId::new(alone.clone());
                    info!(pbx = %self.s.pool, channel = %alone, bridge = %b.id,
                          "found alone in a callpark bridge; hanging up");
                    self.action(out, Verb::Delete, &alone, "", vec![], "hang up");
                }
                _ => {}
            }
            if b.channels.len() < 2 {
                out.request(self.req(
                    Verb::Delete,
                    format!("/bridges/{}", b.id),
                    vec![],
                    None,
                    Tag::Action("destroy an emptied bridge"),
                ));
            }
        }
    }

    /// Reports every channel sitting in the Stasis application as what it is, as its
    /// StasisStart would have: it may have arrived while callpark could not act. Reported
    /// into an output of its own, whose call events go out as [`crate::pbx::PbxEvent::Found`].
    pub(super) fn adopt(&mut self, chs: Vec<Channel>, out: &mut Output<Request>) {
        let prefix = format!("{},", self.s.app);
        let mut found = Output::default();
        for ch in chs {
            let Some(dp) = &ch.dialplan else { continue };
            let in_app = dp.app_name.eq_ignore_ascii_case("stasis")
                && (dp.app_data == self.s.app || dp.app_data.starts_with(&prefix));
            if !in_app {
                continue;
            }
            let id = ChannelId::new(ch.id.clone());
            // Already handled over this connection, or being bridged by it: the listing is
            // older than what those events said.
            let bridging = self.bridged.contains_key(&id)
                || self
                    .pending_bridges
                    .values()
                    .any(|(a, b)| *a == id || *b == id);
            if self.seen.contains(&id) || (bridging && !self.found_bridged.contains_key(&id)) {
                continue;
            }
            if let Some(bridge) = self.found_bridged.get(&id) {
                // In a complete bridge (alone ones are being hung up): connected.
                if self.bridged.contains_key(&id) {
                    if let Some(parked) = bridge.strip_prefix("cp-") {
                        if parked == id.as_str() {
                            found.event(Event::Bridged { channel: id });
                        }
                    }
                }
                continue;
            }
            let args: Vec<String> = dp
                .app_data
                .split(',')
                .skip(1)
                .map(|a| a.trim().to_string())
                .collect();
            self.on_stasis_start(args, ch, None, true, &mut found);
        }
        out.append_found(found);
    }
}
