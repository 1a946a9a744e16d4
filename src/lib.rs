//! callpark: Lync Server 2013 style call park for Asterisk and FreeSWITCH.
//!
//! The service (PBX adapters, store, API, CLI) and the import of a Lync configuration live
//! here; orbits and the park state machine are the `callpark-core` crate, the FreeSWITCH
//! event-socket codec `callpark-esl`, the normalization lint `callpark-lint`. See
//! ARCHITECTURE.md for how a park flows through them.

pub mod api;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod import;
pub mod pbx;
pub mod service;
pub mod setup;
pub mod store;

pub use callpark_core::{orbit, park};
pub use callpark_lint as lint;
