//! A SIP phone on UDP, just enough of RFC 3261 for Asterisk's PJSIP endpoint `alice` of the
//! testbed (contact 127.0.0.1:5170): it answers or lets ring INVITEs, takes BYE and CANCEL,
//! and keeps every MESSAGE it is sent, which is how callpark tells a SIP parker its orbit.

use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;

/// What the phone does with an INVITE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Answer,
    Ring,
}

pub struct SipPhone {
    pub messages: Arc<Mutex<Vec<String>>>,
    pub invites: Arc<Mutex<Vec<String>>>,
    mode: Arc<Mutex<Answer>>,
    task: tokio::task::JoinHandle<()>,
}

impl SipPhone {
    pub async fn start(addr: &str) -> SipPhone {
        let sock = UdpSocket::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("bind the SIP phone on {addr}: {e}"));
        let messages: Arc<Mutex<Vec<String>>> = Default::default();
        let invites: Arc<Mutex<Vec<String>>> = Default::default();
        let mode = Arc::new(Mutex::new(Answer::Answer));
        let (m, i, md) = (messages.clone(), invites.clone(), mode.clone());
        let local = addr.to_string();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            // INVITEs left ringing, by Call-ID: a CANCEL answers them with 487.
            let mut ringing: Vec<(String, String)> = Vec::new();
            loop {
                let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                    return;
                };
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                let Some(method) = text.split(' ').next().map(str::to_string) else {
                    continue;
                };
                if text.starts_with("SIP/2.0") {
                    continue; // a response to nothing we sent
                }
                let reply = match method.as_str() {
                    "INVITE" => {
                        i.lock().unwrap().push(text.clone());
                        let m = *md.lock().unwrap();
                        match m {
                            Answer::Answer => Some(response(&text, "200 OK", &local, true)),
                            Answer::Ring => {
                                ringing.push((header(&text, "Call-ID"), text.clone()));
                                Some(response(&text, "180 Ringing", &local, false))
                            }
                        }
                    }
                    "CANCEL" => {
                        let id = header(&text, "Call-ID");
                        if let Some(pos) = ringing.iter().position(|(c, _)| *c == id) {
                            let (_, inv) = ringing.remove(pos);
                            let _ = sock
                                .send_to(response(&text, "200 OK", &local, false).as_bytes(), peer)
                                .await;
                            Some(response(&inv, "487 Request Terminated", &local, false))
                        } else {
                            Some(response(&text, "200 OK", &local, false))
                        }
                    }
                    "MESSAGE" => {
                        m.lock().unwrap().push(body(&text));
                        Some(response(&text, "200 OK", &local, false))
                    }
                    "ACK" => None,
                    _ => Some(response(&text, "200 OK", &local, false)),
                };
                if let Some(r) = reply {
                    let _ = sock.send_to(r.as_bytes(), peer).await;
                }
            }
        });
        SipPhone {
            messages,
            invites,
            mode,
            task,
        }
    }

    pub fn set(&self, a: Answer) {
        *self.mode.lock().unwrap() = a;
    }
}

impl Drop for SipPhone {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn header(msg: &str, name: &str) -> String {
    msg.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default()
}

fn body(msg: &str) -> String {
    msg.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// A response echoing the request's dialog headers; `sdp` adds an audio offer answer.
fn response(req: &str, status: &str, local: &str, sdp: bool) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for l in req.lines() {
        let key = l
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if key == "via" || key == "v" {
            out.push_str(l.trim_end());
            out.push_str("\r\n");
        }
    }
    let to = header(req, "To");
    let to = if to.contains("tag=") || status.starts_with("100") {
        to
    } else {
        format!("{to};tag=phone{}", header(req, "Call-ID").len())
    };
    out.push_str(&format!("From: {}\r\n", header(req, "From")));
    out.push_str(&format!("To: {to}\r\n"));
    out.push_str(&format!("Call-ID: {}\r\n", header(req, "Call-ID")));
    out.push_str(&format!("CSeq: {}\r\n", header(req, "CSeq")));
    out.push_str(&format!("Contact: <sip:alice@{local}>\r\n"));
    let (ip, _) = local.split_once(':').unwrap_or((local, ""));
    if sdp {
        let b = format!(
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 5172 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
        );
        out.push_str("Content-Type: application/sdp\r\n");
        out.push_str(&format!("Content-Length: {}\r\n\r\n{b}", b.len()));
    } else {
        out.push_str("Content-Length: 0\r\n\r\n");
    }
    out
}
