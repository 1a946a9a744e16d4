//! A fault injected into callpark or into its connection to the PBX, and ended.

use std::time::Duration;

use super::plan::Fault;
use crate::{Callpark, Cutter};

impl Fault {
    /// Waits `at`, injects the fault, and ends it after `lasting`: the process killed and
    /// started again, frozen and thawed, its connection cut or silenced and restored.
    pub(super) async fn inject(
        self,
        cp: &mut Callpark,
        cutter: &Cutter,
        at: Duration,
        lasting: Duration,
    ) {
        tokio::time::sleep(at).await;
        match self {
            Fault::None => {}
            Fault::Kill => {
                cp.kill();
                tokio::time::sleep(lasting).await;
                cp.spawn().await;
            }
            Fault::Stop => {
                cp.freeze();
                tokio::time::sleep(lasting).await;
                cp.thaw();
            }
            Fault::Cut => {
                cutter.cut();
                tokio::time::sleep(lasting).await;
                cutter.restore();
            }
            Fault::Silence => {
                cutter.freeze();
                tokio::time::sleep(lasting).await;
                cutter.restore();
            }
        }
    }
}
