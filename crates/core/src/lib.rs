//! The heart of callpark (Lync Server 2013 style call park for Asterisk and FreeSWITCH), with no
//! I/O: orbits and their allocation ([`orbit`]), and the park lifecycle as a state machine
//! ([`park`]).
//!
//! Nothing here touches a socket, a clock or a disk. The service feeds [`park::ParkCore`] the
//! PBX's events and the current time, carries out the [`park::Command`]s it returns, and
//! persists what it drains ([`park::ParkCore::drain_changes`], [`park::ParkCore::drain_log`]).
//! The crate depends on no async runtime, database or JSON library; the `serde` feature (off by
//! default) derives `Serialize`/`Deserialize` for the values the service stores and serves.
//!
//! # Example
//!
//! One pool with the orbits `*701` to `*799`, everyone allowed to park: a call parks on the
//! lowest free orbit and is connected to whoever dials it.
//!
//! ```
//! use callpark_core::orbit::{Orbit, OrbitRange, OrbitTable};
//! use callpark_core::park::{
//!     ChannelId, Command, Event, ParkCore, ParkRequest, Parker, Party, PolicyRule, PolicySet,
//!     PoolOrbits, Settings,
//! };
//!
//! let table = OrbitTable::new(vec![OrbitRange {
//!     name: "main".into(),
//!     span: "*701-*799".parse()?,
//!     pool: "pbx1".into(),
//!     lot: None,
//! }])?;
//! let everyone = PolicyRule::new("everyone", true, &[], &[".*".into()])?;
//! let mut core = ParkCore::new(
//!     Settings::default(),
//!     PolicySet::new(vec![everyone]),
//!     PoolOrbits::new(&table, "pbx1"),
//! );
//!
//! // Alice parks Carol's call at t = 0 ms.
//! let carol = ChannelId::new("carol-1");
//! let alice = Parker {
//!     ids: vec!["alice".into()],
//!     endpoint: Some("PJSIP/alice".into()),
//!     display: "Alice".into(),
//! };
//! let caller = Party { name: "Carol".into(), number: "5551234".into() };
//! let commands = core.handle(0, Event::Park(ParkRequest::new(carol.clone(), caller, alice)));
//! assert!(commands.contains(&Command::Answer { channel: carol.clone() }));
//! let orbit: Orbit = "*701".parse()?;
//! assert_eq!(core.call(&carol).unwrap().orbit, Some(orbit));
//! // The pickup timeout (90 s by default) rings Alice back if nobody takes the call.
//! assert_eq!(core.next_deadline(), Some(90_000));
//!
//! // Bob dials *701 ten seconds later: the two channels are bridged.
//! let bob = ChannelId::new("bob-1");
//! let commands = core.handle(
//!     10_000,
//!     Event::Retrieve {
//!         channel: bob.clone(),
//!         orbit,
//!         by: Party::default(),
//!         dialler: Parker::default(),
//!     },
//! );
//! assert!(commands.contains(&Command::Bridge { parked: carol.clone(), other: bob }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod orbit;
pub mod park;
