//! callpark: Lync Server 2013 style call park for Asterisk and FreeSWITCH.
//!
//! See ARCHITECTURE.md for how a park flows through these modules.

pub mod api;
pub mod cli;
pub mod config;
pub mod lint;
pub mod orbit;
pub mod park;
pub mod pbx;
pub mod service;
pub mod store;
