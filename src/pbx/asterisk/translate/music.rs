//! Playbacks and music on hold: a class, a file played in a loop, and music that cannot play.

use tracing::{debug, warn};

use super::names::path_channel;
use super::{AfterPlayback, AriTranslator, PlaybackId, Request, Tag, Verb};
use crate::park::{ChannelId, Moh};
use crate::pbx::Output;

impl AriTranslator {
    pub(super) fn play(
        &mut self,
        out: &mut Output<Request>,
        ch: &ChannelId,
        media: &str,
        after: Option<AfterPlayback>,
    ) -> PlaybackId {
        self.seq += 1;
        let pb = PlaybackId(format!("cp-{ch}-{}", self.seq));
        if let Some(a) = after {
            self.after.insert(pb.clone(), a);
        }
        out.request(self.req(
            Verb::Post,
            path_channel(ch, &format!("/play/{}", pb.0)),
            vec![("media", media.to_string())],
            Some(ch),
            Tag::Play(pb.clone()),
        ));
        pb
    }

    /// A playback ended; `failed`: it never played (a missing sound file).
    pub(super) fn on_playback_finished(
        &mut self,
        pb: &PlaybackId,
        failed: bool,
        out: &mut Output<Request>,
    ) {
        let Some(after) = self.after.remove(pb) else {
            return;
        };
        match after {
            AfterPlayback::Hangup(ch) => self.action(out, Verb::Delete, &ch, "", vec![], "hang up"),
            AfterPlayback::Continue(ch) => {
                self.action(out, Verb::Post, &ch, "/continue", vec![], "continue")
            }
            AfterPlayback::Moh(ch) => {
                let c = self.chan(&ch);
                c.announcing = false;
                if let Some(moh) = c.deferred_moh.take() {
                    self.start_moh(out, &ch, moh);
                }
            }
            AfterPlayback::Loop { channel, media } => {
                if self.chans.get(&channel).and_then(|c| c.file_moh.as_ref()) != Some(pb) {
                    return;
                }
                if failed {
                    // Played again it would fail again, at once and forever: the call waits
                    // in silence (still parked), and the file is reported once.
                    self.chan(&channel).file_moh = None;
                    self.music_silent(&channel, &media);
                } else {
                    self.play_file_moh(out, &channel, &media);
                }
            }
        }
    }

    /// Music on hold that cannot play: said once per source, as a warning; the call stays
    /// parked in silence.
    pub(super) fn music_silent(&mut self, ch: &ChannelId, media: &str) {
        if self.silent_music.insert(media.to_string()) {
            warn!(pbx = %self.s.pool, channel = %ch, music = %media,
                  "music on hold cannot play: parked calls wait in silence; check that the music class (musiconhold.conf) or file exists");
        } else {
            debug!(pbx = %self.s.pool, channel = %ch, music = %media, "music on hold cannot play");
        }
    }

    pub(super) fn play_file_moh(&mut self, out: &mut Output<Request>, ch: &ChannelId, media: &str) {
        let after = AfterPlayback::Loop {
            channel: ch.clone(),
            media: media.to_string(),
        };
        let pb = self.play(out, ch, media, Some(after));
        self.chan(ch).file_moh = Some(pb);
    }

    pub(super) fn start_moh(&mut self, out: &mut Output<Request>, ch: &ChannelId, moh: Moh) {
        match moh {
            Moh::Off => {}
            Moh::Class(class) => {
                let q = class.map(|c| ("mohClass", c)).into_iter().collect();
                self.action(out, Verb::Post, ch, "/moh", q, "start music on hold");
            }
            Moh::File(path) => {
                // ARI plays sound files by path without their extension.
                let p = std::path::Path::new(&path);
                let media = format!("sound:{}", p.with_extension("").display());
                self.play_file_moh(out, ch, &media);
            }
        }
    }
}
