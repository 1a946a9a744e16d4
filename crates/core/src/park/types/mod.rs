//! Values that flow in and out of the park state machine, one kind per file.

mod call;
mod channel;
mod command;
mod destination;
mod event;
mod log;
mod party;
mod refusal;
mod settings;
mod time;

pub use self::call::{CallState, Change, Paging, ParkedCall, Via};
pub use self::channel::ChannelId;
pub use self::command::{Command, LampState, LegPurpose, Target};
pub use self::destination::{Destination, DestinationError};
pub use self::event::{Event, ParkRequest};
pub use self::log::{LogEvent, LogKind};
pub use self::party::{Parker, Party};
pub use self::refusal::{OperatorError, RefuseReason};
pub use self::settings::{Moh, OnBusyOrbit, Settings};
pub use self::time::{BRIDGE_TIMEOUT, HANDOVER_TIMEOUT, Millis, NO_DEADLINE, SETTLE_TIME};
