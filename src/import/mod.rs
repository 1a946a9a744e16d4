//! Importing the call park of another system into callpark's configuration.
//!
//! [`lync`]: what Lync Server 2013 / Skype for Business Server 2015 and 2019 administrators can
//! export of their call park (orbits, Call Park service settings, voice policies, and Teams'
//! call park policies), written out as callpark TOML.

pub mod lync;
