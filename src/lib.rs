//! callpark: Lync Server 2013 style call park for Asterisk and FreeSWITCH.
//!
//! See ARCHITECTURE.md for how a park flows through these modules.

pub mod config;
pub mod orbit;
pub mod park;
pub mod store;
pub mod pbx;
pub mod service;
pub mod cli;
