//! Asterisk over ARI: REST for commands, the `/ari/events` websocket for events.
//!
//! `model` reads ARI's JSON, `translate` is the pure half (tested on captured events without
//! Asterisk), `driver` the I/O half (the websocket and a pool of keep-alive REST connections).

pub mod dialplan;
mod driver;
pub mod model;
mod request;
pub mod rest;
pub mod translate;

use crate::config::PbxConfig;

use self::driver::AriTransport;
use self::rest::Ari;
use self::translate::{AriSettings, AriTranslator};
use super::trunk::Trunks;
use super::{Adapter, PbxError};

/// The adapter for a `[[pbx]]` entry of `kind = "asterisk"`; `all` are every `[[pbx]]`, whose
/// `reach` rings back a parker who transferred a call here from another pool.
pub(crate) fn adapter(
    pbx: &PbxConfig,
    all: &[PbxConfig],
) -> Result<Adapter<AriTransport>, PbxError> {
    let err = |message: String| PbxError::Config {
        pbx: pbx.name.clone(),
        message,
    };
    if !pbx.address.starts_with("http://") && !pbx.address.starts_with("https://") {
        return Err(err(format!(
            "address `{}` must be Asterisk's HTTP server, like http://127.0.0.1:8088",
            pbx.address
        )));
    }
    let user = pbx
        .username
        .clone()
        .ok_or_else(|| err("username (the ari.conf user) is missing".into()))?;
    let pass = pbx
        .secret()
        .map_err(err)?
        .ok_or_else(|| err("password or password_env is missing".into()))?;
    Ok(Adapter::new(
        pbx.name.clone(),
        AriTransport::new(Ari::new(&pbx.address, &user, &pass), &pbx.app),
        AriTranslator::new(AriSettings {
            pool: pbx.name.clone(),
            app: pbx.app.clone(),
            sip_endpoint: pbx.sip_endpoint.clone(),
            trunks: Trunks::of(pbx, all),
        }),
    ))
}
