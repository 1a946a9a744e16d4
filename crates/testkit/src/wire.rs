//! A PBX the test plays through the `Pbx` trait: the service gets the test's events, the test
//! gets the service's commands (or they are dropped). It stands for no particular PBX and checks
//! only what the service does with the core, the store and the clock.

use callpark::park::Command;
use callpark::pbx::{Held, Pbx, PbxError, PbxEvent};
use tokio::sync::mpsc;

pub struct Wire {
    pub to_service: mpsc::Receiver<PbxEvent>,
    /// Where the service's commands go; `None` drops them.
    pub from_service: Option<mpsc::Sender<Command>>,
}

impl Pbx for Wire {
    fn name(&self) -> &str {
        "pbx-a"
    }

    async fn run(
        mut self,
        events: mpsc::Sender<PbxEvent>,
        mut commands: mpsc::Receiver<Command>,
        _held: Held,
    ) -> Result<(), PbxError> {
        loop {
            tokio::select! {
                e = self.to_service.recv() => match e {
                    Some(e) => { if events.send(e).await.is_err() { return Ok(()); } }
                    None => return Ok(()),
                },
                c = commands.recv() => match (c, &self.from_service) {
                    (Some(c), Some(to)) => { let _ = to.send(c).await; }
                    (Some(_), None) => {}
                    (None, _) => return Ok(()),
                },
            }
        }
    }
}
