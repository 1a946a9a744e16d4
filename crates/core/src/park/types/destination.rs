//! Where a call goes when nobody took it (`on_timeout`), as the configuration writes it.

use std::fmt;

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

/// Where a call goes when every ringback was missed (Lync's OnTimeoutURI).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub enum Destination {
    /// `exten:0@from-internal`: an extension in a dialplan context.
    Exten {
        /// The extension.
        exten: String,
        /// Its dialplan context.
        context: String,
    },
    /// `sip:operator@example.com`.
    Sip(String),
    /// A raw PBX dial string (`PJSIP/operator`, `sofia/internal/1000@example.com`).
    Dial(String),
}

impl Destination {
    /// Reads a destination as the configuration writes it; the error says what is wrong.
    ///
    /// ```
    /// use callpark_core::park::Destination;
    ///
    /// assert_eq!(
    ///     Destination::parse("exten:0@from-internal"),
    ///     Ok(Destination::Exten { exten: "0".into(), context: "from-internal".into() })
    /// );
    /// assert_eq!(Destination::parse("PJSIP/operator"), Ok(Destination::Dial("PJSIP/operator".into())));
    /// assert!(Destination::parse("sip:operator").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Destination, DestinationError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(DestinationError::Empty);
        }
        if s.chars().any(char::is_whitespace) {
            return Err(DestinationError::WhiteSpace(s.into()));
        }
        if let Some(rest) = s.strip_prefix("exten:") {
            return match rest.split_once('@') {
                Some((e, c)) if !e.is_empty() && !c.is_empty() => Ok(Destination::Exten {
                    exten: e.into(),
                    context: c.into(),
                }),
                _ => Err(DestinationError::Exten(s.into())),
            };
        }
        if s.starts_with("sip:") || s.starts_with("sips:") {
            return if s.contains('@') {
                Ok(Destination::Sip(s.into()))
            } else {
                Err(DestinationError::SipUri(s.into()))
            };
        }
        if s.contains('/') {
            return Ok(Destination::Dial(s.into()));
        }
        Err(DestinationError::Unknown(s.into()))
    }
}

/// Why a string is not a [`Destination`]: the text (trimmed), and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    /// Nothing but white space.
    #[error("is empty: give `exten:EXTEN@CONTEXT`, a `sip:` URI or a dial string")]
    Empty,
    /// White space inside it.
    #[error("`{0}` contains white space")]
    WhiteSpace(String),
    /// `exten:` without an extension, a context or the `@` between them.
    #[error("`{0}`: write an extension as `exten:EXTEN@CONTEXT`")]
    Exten(String),
    /// A `sip:` (or `sips:`) URI without a user and a host.
    #[error("`{0}`: a SIP URI needs a user and a host, like sip:operator@example.com")]
    SipUri(String),
    /// None of the forms a destination takes.
    #[error(
        "`{0}` is neither `exten:EXTEN@CONTEXT`, a `sip:` URI nor a dial string like `PJSIP/operator`"
    )]
    Unknown(String),
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Exten { exten, context } => write!(f, "exten:{exten}@{context}"),
            Destination::Sip(s) | Destination::Dial(s) => f.write_str(s),
        }
    }
}
