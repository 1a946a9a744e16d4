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

use crate::config::PbxConfig;

use self::driver::EslTransport;
pub(crate) use self::driver::{ConnectError, Reader, open as open_event_socket};
use self::translate::{FsSettings, FsTranslator};
use super::trunk::Trunks;
use super::{Adapter, PbxError};

/// The adapter for a `[[pbx]]` entry of `kind = "freeswitch"`; `all` are every `[[pbx]]`, whose
/// `reach` rings back a parker who transferred a call here from another pool.
pub(crate) fn adapter(
    pbx: &PbxConfig,
    all: &[PbxConfig],
) -> Result<Adapter<EslTransport>, PbxError> {
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
    Ok(Adapter::new(
        pbx.name.clone(),
        EslTransport::new(addr, &password, pbx.outbound.as_deref()),
        FsTranslator::new(FsSettings {
            pool: pbx.name.clone(),
            sip_profile: pbx.sip_endpoint.clone(),
            domain: pbx
                .domain
                .clone()
                .unwrap_or_else(|| host.trim_matches(['[', ']']).to_string()),
            trunks: Trunks::of(pbx, all),
        }),
    ))
}
