//! Asterisk over ARI (REST + websocket events).

use thiserror::Error;

use crate::config::{Config, PbxConfig};

#[derive(Debug, Error)]
pub enum AsteriskError {
    #[error("pbx `{0}`: the Asterisk adapter is not built yet")]
    NotBuilt(String),
}

/// The Asterisk adapter.
pub struct Asterisk {
    name: String,
}

impl Asterisk {
    pub fn new(pbx: &PbxConfig, _cfg: &Config) -> Result<Asterisk, AsteriskError> {
        Err(AsteriskError::NotBuilt(pbx.name.clone()))
    }
}

impl super::Pbx for Asterisk {
    fn name(&self) -> &str {
        &self.name
    }

    async fn run(
        self,
        _events: tokio::sync::mpsc::Sender<super::PbxEvent>,
        _commands: tokio::sync::mpsc::Receiver<crate::park::Command>,
    ) -> Result<(), super::PbxError> {
        Ok(())
    }
}
