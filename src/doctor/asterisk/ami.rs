//! A small client of Asterisk's manager interface (AMI), only to run CLI commands (`Action:
//! Command`): what Asterisk has loaded, as opposed to what its files say. The framing and the
//! readers of the commands' output are plain functions over text, tested without a socket.
//!
//! The wire format, from Asterisk's `main/manager.c` (`action_command`): since Asterisk 14 a
//! Command response is `Response: Success` (or `Error`), `Message: Command output follows`,
//! then one `Output: <line>` per line of output, ended by a blank line like any message.
//! Asterisk 13 and older answer `Response: Follows`, then the raw output (blank lines
//! included), ended by `--END COMMAND--` and a blank line.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One message Asterisk sent: its `Key: value` lines and, for a command, its output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub fields: Vec<(String, String)>,
    pub output: Vec<String>,
}

impl Message {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// The command's output, one line per line.
    pub fn output_text(&self) -> String {
        self.output.join("\n")
    }
}

const END_COMMAND: &str = "--END COMMAND--";

/// The first complete message at the start of `buf` and how many bytes of it it took; `None`
/// while more is to come.
pub fn next_message(buf: &str) -> Option<(Message, usize)> {
    let mut at = 0;
    let mut lines: Vec<&str> = Vec::new();
    let mut follows = false;
    loop {
        let nl = buf[at..].find('\n')?;
        let line = buf[at..at + nl].trim_end_matches('\r');
        at += nl + 1;
        if lines.is_empty() && line.is_empty() {
            // Blank lines between messages.
            continue;
        }
        if lines.is_empty() {
            follows = line.eq_ignore_ascii_case("Response: Follows");
        }
        if follows {
            if let Some(before) = line.strip_suffix(END_COMMAND) {
                if !before.is_empty() {
                    lines.push(before);
                }
                // The blank line after the marker belongs to this message.
                if let Some(nl) = buf[at..].find('\n') {
                    if buf[at..at + nl].trim().is_empty() {
                        at += nl + 1;
                    }
                }
                return Some((parse_follows(&lines), at));
            }
        } else if line.is_empty() {
            return Some((parse(&lines), at));
        }
        lines.push(line);
    }
}

fn field(line: &str) -> Option<(String, String)> {
    let (k, v) = line.split_once(':')?;
    (!k.is_empty() && !k.contains(char::is_whitespace))
        .then(|| (k.to_string(), v.strip_prefix(' ').unwrap_or(v).to_string()))
}

fn parse(lines: &[&str]) -> Message {
    let mut m = Message::default();
    for l in lines {
        match field(l) {
            Some((k, v)) if k.eq_ignore_ascii_case("Output") => m.output.push(v),
            Some(kv) => m.fields.push(kv),
            None => m.output.push(l.to_string()),
        }
    }
    m
}

/// The old format: its own headers first, then the raw output (whose lines may look like
/// headers, `Class: default`, so only the headers Asterisk writes there are taken as such).
fn parse_follows(lines: &[&str]) -> Message {
    let mut m = Message::default();
    let mut headers = true;
    for l in lines {
        if headers {
            if let Some((k, v)) = field(l) {
                if ["Response", "Privilege", "ActionID", "Message"]
                    .iter()
                    .any(|h| k.eq_ignore_ascii_case(h))
                {
                    m.fields.push((k, v));
                    continue;
                }
                if k.eq_ignore_ascii_case("Output") {
                    headers = false;
                    m.output.push(v);
                    continue;
                }
            }
            headers = false;
        }
        m.output.push(l.to_string());
    }
    m
}

/// Why no AMI session could be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmiError {
    /// Nothing (or not AMI) answered at the address.
    Unreachable(String),
    /// AMI refused the user and secret.
    Refused(String),
}

const TIMEOUT: Duration = Duration::from_secs(5);

/// A logged-in AMI session.
pub struct Session {
    stream: TcpStream,
    buf: String,
    seq: u32,
}

impl Session {
    /// Connects to `address` (`host:port`) and logs in, with events off: only replies come.
    pub async fn login(address: &str, user: &str, secret: &str) -> Result<Session, AmiError> {
        let stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(address))
            .await
            .map_err(|_| AmiError::Unreachable("no answer within 5 s".into()))?
            .map_err(|e| AmiError::Unreachable(e.to_string()))?;
        let mut s = Session {
            stream,
            buf: String::new(),
            seq: 0,
        };
        let banner = s.banner().await.map_err(AmiError::Unreachable)?;
        if !banner.starts_with("Asterisk Call Manager") {
            return Err(AmiError::Unreachable(format!(
                "it is not Asterisk's manager interface (it said `{}`)",
                banner.trim()
            )));
        }
        let r = s
            .action(
                "Login",
                &[("Username", user), ("Secret", secret), ("Events", "off")],
            )
            .await
            .map_err(AmiError::Unreachable)?;
        if r.get("Response")
            .is_some_and(|v| v.eq_ignore_ascii_case("Success"))
        {
            Ok(s)
        } else {
            Err(AmiError::Refused(
                r.get("Message").unwrap_or("login refused").to_string(),
            ))
        }
    }

    /// The greeting line, `Asterisk Call Manager/<version>`, the one line with no blank after.
    async fn banner(&mut self) -> Result<String, String> {
        loop {
            if let Some(nl) = self.buf.find('\n') {
                let line = self.buf[..nl].trim_end().to_string();
                self.buf.drain(..=nl);
                return Ok(line);
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> Result<(), String> {
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(TIMEOUT, self.stream.read(&mut chunk))
            .await
            .map_err(|_| "AMI did not answer within 5 s".to_string())?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("AMI closed the connection".into());
        }
        self.buf.push_str(&String::from_utf8_lossy(&chunk[..n]));
        Ok(())
    }

    /// Sends an action and returns its response (events and other replies are passed over).
    async fn action(&mut self, name: &str, fields: &[(&str, &str)]) -> Result<Message, String> {
        self.seq += 1;
        let id = format!("callpark-doctor-{}", self.seq);
        let mut text = format!("Action: {name}\r\nActionID: {id}\r\n");
        for (k, v) in fields {
            text.push_str(&format!("{k}: {v}\r\n"));
        }
        text.push_str("\r\n");
        self.stream
            .write_all(text.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        loop {
            while let Some((m, used)) = next_message(&self.buf) {
                self.buf.drain(..used);
                if m.get("ActionID") == Some(id.as_str()) && m.get("Response").is_some() {
                    return Ok(m);
                }
            }
            self.fill().await?;
        }
    }

    /// Runs a CLI command: its output, or why AMI gave none (`Permission denied`: the user
    /// lacks `write = command`).
    pub async fn command(&mut self, cmd: &str) -> Result<String, String> {
        let m = self.action("Command", &[("Command", cmd)]).await?;
        if m.output.is_empty()
            && m.get("Response")
                .is_some_and(|r| r.eq_ignore_ascii_case("Error"))
        {
            return Err(m.get("Message").unwrap_or("refused").to_string());
        }
        Ok(m.output_text())
    }

    pub async fn logoff(mut self) {
        let _ = self.action("Logoff", &[]).await;
    }
}

/// The classes `moh show classes` lists (`Class: default`).
pub fn moh_classes(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Class:"))
        .map(|c| c.trim().to_string())
        .collect()
}

/// The extension Asterisk runs, as `dialplan show <exten>@<context>` shows it: the first
/// extension listed (contexts come in the order they are searched, and extensions in a
/// context in their match order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub context: String,
    pub exten: String,
    /// Its priorities as shown: `1. Stasis(callpark,park)`.
    pub steps: Vec<String>,
    /// Where it was read from (`extensions.conf:12`), when Asterisk says.
    pub at: Option<String>,
}

/// The first extension of `dialplan show`'s output; `None` when it shows none (`There is no
/// existence of ...`).
pub fn first_extension(output: &str) -> Option<Shown> {
    let mut context = String::new();
    let mut found: Option<Shown> = None;
    for line in output.lines() {
        let t = line.trim();
        if t.starts_with("[ Context '") || t.starts_with("[ Included context '") {
            if found.is_some() {
                break;
            }
            context = t.split('\'').nth(1).unwrap_or("").to_string();
            continue;
        }
        let (step_text, at) = split_at(t);
        if let Some(rest) = t.strip_prefix('\'') {
            // `'park' =>  1. App(args)  [file:line]`: a new extension.
            if found.is_some() {
                break;
            }
            let name = rest.split('\'').next().unwrap_or("").to_string();
            let step = step_text
                .split_once("=>")
                .map(|(_, s)| s.trim().to_string())
                .unwrap_or_default();
            found = Some(Shown {
                context: context.clone(),
                exten: name,
                steps: vec![step],
                at,
            });
        } else if let Some(f) = found.as_mut() {
            if t.is_empty() || t.starts_with("-=") {
                break;
            }
            // A further priority, after its label if it has one (`[direct]  6. Stasis(...)`).
            let s = match step_text.strip_prefix('[') {
                Some(r) => r.split_once(']').map_or(r, |(_, s)| s).trim(),
                None => step_text.trim(),
            };
            f.steps.push(s.to_string());
        }
    }
    found
}

/// A shown line without its trailing `[file:line]` (or `[registrar]`), and that place.
fn split_at(line: &str) -> (&str, Option<String>) {
    match line.rfind(" [") {
        Some(i) if line.ends_with(']') && i > 0 => (
            line[..i].trim_end(),
            Some(line[i + 2..line.len() - 1].to_string()),
        ),
        _ => (line, None),
    }
}
