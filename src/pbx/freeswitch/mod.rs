//! FreeSWITCH over the event socket (mod_event_socket, inbound): callpark connects to the
//! socket FreeSWITCH already has, subscribes to the events of the channels its include file
//! marks, and sends `api`/`bgapi` commands on the same connection.
//!
//! `codec` frames the protocol and `model` reads events (both from the `callpark-esl` crate),
//! `translate` is the pure half (tested without FreeSWITCH), `driver` the socket half.

pub mod dialplan;
mod driver;
pub mod translate;

pub use callpark_esl::{codec, model};

use tokio::sync::mpsc;

use crate::config::PbxConfig;
use crate::park::Command;

use self::driver::EslTransport;
use self::translate::{FsSettings, FsTranslator};
use super::{Held, Pbx, PbxError, PbxEvent, drive};

/// The FreeSWITCH adapter.
pub struct Freeswitch {
    name: String,
    transport: EslTransport,
    settings: FsSettings,
}

impl Freeswitch {
    pub fn new(pbx: &PbxConfig) -> Result<Freeswitch, PbxError> {
        let err = |message: String| PbxError::Config {
            pbx: pbx.name.clone(),
            message,
        };
        let addr = pbx.address.trim();
        let host = match addr.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && !h.contains('/') && p.parse::<u16>().is_ok() => h,
            _ => {
                return Err(err(format!(
                    "address `{addr}` must be the event socket as HOST:PORT, like 127.0.0.1:8021 (event_socket.conf.xml)"
                )));
            }
        };
        let password = pbx.secret().map_err(err)?.ok_or_else(|| {
            err("password or password_env (event_socket.conf.xml's password) is missing".into())
        })?;
        Ok(Freeswitch {
            name: pbx.name.clone(),
            transport: EslTransport::new(addr, &password, pbx.outbound.as_deref()),
            settings: FsSettings {
                pool: pbx.name.clone(),
                sip_profile: pbx.sip_endpoint.clone(),
                domain: pbx
                    .domain
                    .clone()
                    .unwrap_or_else(|| host.trim_matches(['[', ']']).to_string()),
            },
        })
    }
}

impl Pbx for Freeswitch {
    fn name(&self) -> &str {
        &self.name
    }

    async fn run(
        self,
        events: mpsc::Sender<PbxEvent>,
        commands: mpsc::Receiver<Command>,
        held: Held,
    ) -> Result<(), PbxError> {
        drive(
            &self.name,
            self.transport,
            FsTranslator::new(self.settings),
            events,
            commands,
            held,
        )
        .await
    }
}
