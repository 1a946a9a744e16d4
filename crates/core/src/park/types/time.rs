//! Time as the core counts it, and the bounds that are not settings.

/// Milliseconds since the Unix epoch. Deadlines are absolute so that a restart resumes them.
pub type Millis = i64;

/// The deadline of a call that waits with no timer running: parked until retrieved (nobody to
/// ring back and no `on_timeout`). Stored like any deadline; never fires.
pub const NO_DEADLINE: Millis = Millis::MAX;

/// How long the orbit of a replaced call waits for the call replacing it (FreeSWITCH hangs the
/// consultation up some 20 ms before the caller arrives). Not a setting: it only bounds the
/// wait when the transfer fails after the consultation has gone.
pub const HANDOVER_TIMEOUT: Millis = 5_000;

/// How long a requested bridge may take before it counts as failed. Not a setting in the file:
/// it only bounds the wait for a PBX that never reports the bridge, and Lync has none to mirror.
pub const BRIDGE_TIMEOUT: Millis = 10_000;

/// How long a call parked by dialling (its parker on the line: as likely as not the
/// consultation of a phone's attended transfer, whose REFER is yet to come) keeps a retriever
/// waiting rather than connecting it: the phone's transfer would replace the consultation while
/// the bridge to it is being set up, and FreeSWITCH then drops both. Within it, a retrieve
/// waits until the call settles (the caller takes its place, or it hangs up) or the time ends.
pub const SETTLE_TIME: Millis = 3_000;
