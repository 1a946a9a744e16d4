//! Opening one event-socket connection: TCP, the greeting, the password. Used by the main
//! connection and by each wake-up connection.

use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use thiserror::Error;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::{Encoder, FramedRead};

use crate::pbx::freeswitch::codec::{EslCodec, Frame, FrameError, Outgoing};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a connection to the event socket could not be opened.
#[derive(Debug, Error)]
pub(crate) enum ConnectError {
    #[error("{addr}: connection timed out")]
    Timeout { addr: String },
    #[error("{addr}: {source}")]
    Tcp {
        addr: String,
        source: std::io::Error,
    },
    #[error("no answer from the event socket")]
    NoAnswer,
    #[error("the event socket closed the connection")]
    Closed,
    #[error("malformed frame: {0}")]
    Malformed(FrameError),
    #[error("{addr} did not greet like an event socket (Content-Type {content_type:?})")]
    NotEventSocket { addr: String, content_type: String },
    /// The `auth` command could not be framed.
    #[error("{0}")]
    Encode(FrameError),
    /// The `auth` command could not be sent.
    #[error("{0}")]
    Write(std::io::Error),
    #[error(
        "the event socket refused the password ({0}); check password / password_env against event_socket.conf.xml"
    )]
    Refused(String),
}

/// The reading half of a connection, framed.
pub(crate) type Reader = FramedRead<OwnedReadHalf, EslCodec>;

/// Reads one frame during the handshake.
async fn handshake_frame(reader: &mut Reader) -> Result<Frame, ConnectError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, reader.next()).await {
        Err(_) => Err(ConnectError::NoAnswer),
        Ok(None) => Err(ConnectError::Closed),
        Ok(Some(Err(e))) => Err(ConnectError::Malformed(e)),
        Ok(Some(Ok(f))) => Ok(f),
    }
}

/// Connects and authenticates: the connection's two halves, ready for commands.
pub(crate) async fn open(
    addr: &str,
    password: &str,
) -> Result<(Reader, OwnedWriteHalf), ConnectError> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| ConnectError::Timeout {
            addr: addr.to_string(),
        })?
        .map_err(|source| ConnectError::Tcp {
            addr: addr.to_string(),
            source,
        })?;
    // Commands are small and latency is the point: send each at once.
    let _ = stream.set_nodelay(true);
    let (r, mut w) = stream.into_split();
    let mut reader = FramedRead::new(r, EslCodec::default());
    let greeting = handshake_frame(&mut reader).await?;
    if greeting.content_type() != "auth/request" {
        return Err(ConnectError::NotEventSocket {
            addr: addr.to_string(),
            content_type: greeting.content_type().to_string(),
        });
    }
    let mut auth = BytesMut::new();
    EslCodec::default()
        .encode(&Outgoing::new(format!("auth {password}")), &mut auth)
        .map_err(ConnectError::Encode)?;
    w.write_all(&auth).await.map_err(ConnectError::Write)?;
    let reply = handshake_frame(&mut reader).await?;
    let text = reply.reply_text();
    if !text.starts_with("+OK") {
        return Err(ConnectError::Refused(text.trim().to_string()));
    }
    Ok((reader, w))
}
