//! The doctor for an Asterisk `[[pbx]]`.

use super::{Check, Options};
use crate::config::{Config, PbxConfig};

/// Runs the checks of one Asterisk pool.
pub async fn examine(_cfg: &Config, _pbx: &PbxConfig, _opts: &Options) -> Vec<Check> {
    vec![Check::skip("asterisk", "not checked yet")]
}
