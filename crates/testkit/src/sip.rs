//! A SIP phone on UDP, just enough of RFC 3261 for the testbeds' `alice` (Asterisk's PJSIP
//! endpoint, contact 127.0.0.1:5170; FreeSWITCH's directory user, 127.0.0.1:5270): it answers
//! or lets ring INVITEs, takes BYE and CANCEL, keeps every MESSAGE it is sent (how callpark
//! tells a SIP parker its orbit) and every NOTIFY, and sends REGISTER, SUBSCRIBE and, within a
//! call it answered, REFER (a blind transfer). It also places calls (INVITE, ACK, BYE) and keeps
//! every request it is sent, so a test can read what a PBX tells it within a call (a re-INVITE
//! or UPDATE with P-Asserted-Identity: who the phone is now talking to).

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
    /// NOTIFY requests received (the whole request).
    pub notifies: Arc<Mutex<Vec<String>>>,
    /// Every request received, in arrival order (the whole request).
    pub requests: Arc<Mutex<Vec<String>>>,
    /// Responses to the requests this phone sent.
    responses: Arc<Mutex<Vec<String>>>,
    mode: Arc<Mutex<Answer>>,
    sock: Arc<UdpSocket>,
    local: String,
    seq: Arc<std::sync::atomic::AtomicU32>,
    /// Makes this phone's Call-IDs and tags its own: a registrar merges a request that repeats
    /// an earlier one's Call-ID, tag and CSeq.
    nonce: String,
    task: tokio::task::JoinHandle<()>,
}

impl SipPhone {
    pub async fn start(addr: &str) -> SipPhone {
        // The phone of the test before may still hold the port for a moment: its runtime
        // drops its socket only after that test's turn on the testbed was handed on.
        let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let sock = loop {
            match UdpSocket::bind(addr).await {
                Ok(s) => break Arc::new(s),
                Err(e)
                    if e.kind() == std::io::ErrorKind::AddrInUse
                        && std::time::Instant::now() < end =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => panic!("bind the SIP phone on {addr}: {e}"),
            }
        };
        let messages: Arc<Mutex<Vec<String>>> = Default::default();
        let invites: Arc<Mutex<Vec<String>>> = Default::default();
        let notifies: Arc<Mutex<Vec<String>>> = Default::default();
        let requests: Arc<Mutex<Vec<String>>> = Default::default();
        let responses: Arc<Mutex<Vec<String>>> = Default::default();
        let mode = Arc::new(Mutex::new(Answer::Answer));
        let (m, i, md) = (messages.clone(), invites.clone(), mode.clone());
        let (nt, rs, rq) = (notifies.clone(), responses.clone(), requests.clone());
        let local = addr.to_string();
        let task_sock = sock.clone();
        let task_local = local.clone();
        let task = tokio::spawn(async move {
            let sock = task_sock;
            let local = task_local;
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
                    rs.lock().unwrap().push(text);
                    continue;
                }
                rq.lock().unwrap().push(text.clone());
                // Within a call (a To tag): a re-INVITE is accepted with media, whatever a new
                // call would get; an UPDATE carrying an offer is answered with one.
                let in_dialog = header(&text, "To").contains("tag=");
                let reply = match method.as_str() {
                    "INVITE" if in_dialog => {
                        i.lock().unwrap().push(text.clone());
                        Some(response(&text, "200 OK", &local, true))
                    }
                    "UPDATE" => Some(response(
                        &text,
                        "200 OK",
                        &local,
                        header(&text, "Content-Type") == "application/sdp",
                    )),
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
                    "NOTIFY" => {
                        nt.lock().unwrap().push(text.clone());
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
            notifies,
            requests,
            responses,
            mode,
            sock,
            local,
            seq: Default::default(),
            nonce: format!(
                "{}{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_micros()
            ),
            task,
        }
    }

    pub fn set(&self, a: Answer) {
        *self.mode.lock().unwrap() = a;
    }

    /// Sends a request (its Via, CSeq number and Content-Length are filled in) to `to` and
    /// waits for its final response.
    async fn request(
        &self,
        to: &str,
        method: &str,
        uri: &str,
        headers: &str,
        body: &str,
    ) -> String {
        let n = self.seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let branch = format!("z9hG4bKphone{n}x{}", self.nonce);
        let req = format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch={branch};rport\r\nMax-Forwards: 70\r\nCSeq: {} {method}\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            self.local,
            100 + n,
            body.len()
        );
        self.sock
            .send_to(req.as_bytes(), to)
            .await
            .unwrap_or_else(|e| panic!("send {method} to {to}: {e}"));
        let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Some(r) = self
                .responses
                .lock()
                .unwrap()
                .iter()
                .find(|r| r.contains(&branch) && !r.starts_with("SIP/2.0 1"))
            {
                return r.clone();
            }
            assert!(
                std::time::Instant::now() < end,
                "no final response to {method} {uri}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Registers `user` at the registrar `registrar` (host:port) with this phone's contact.
    pub async fn register(&self, registrar: &str, user: &str, domain: &str) -> String {
        let headers = format!(
            "From: <sip:{user}@{domain}>;tag=reg{user}{n}\r\nTo: <sip:{user}@{domain}>\r\nCall-ID: reg-{user}-{n}\r\nContact: <sip:{user}@{}>\r\nExpires: 600\r\n",
            self.local,
            n = self.nonce
        );
        self.request(
            registrar,
            "REGISTER",
            &format!("sip:{domain}"),
            &headers,
            "",
        )
        .await
    }

    /// Subscribes to the dialog state of `who@domain` at `server` (a busy-lamp key).
    pub async fn subscribe(&self, server: &str, who: &str, domain: &str) -> String {
        let headers = format!(
            "From: <sip:alice@{domain}>;tag=sub{who}{n}\r\nTo: <sip:{who}@{domain}>\r\nCall-ID: sub-{who}-{n}\r\nContact: <sip:alice@{}>\r\nEvent: dialog\r\nAccept: application/dialog-info+xml\r\nExpires: 600\r\n",
            self.local,
            n = self.nonce
        );
        self.request(
            server,
            "SUBSCRIBE",
            &format!("sip:{who}@{domain}"),
            &headers,
            "",
        )
        .await
    }

    /// The Call-ID of this phone's subscription to `who`: the NOTIFYs of that subscription carry
    /// it (a PBX may still retransmit NOTIFYs of an earlier phone's subscription to the port).
    pub fn subscription_id(&self, who: &str) -> String {
        format!("sub-{who}-{}", self.nonce)
    }

    /// A blind transfer of the last call this phone answered to `target` (a SIP URI): REFER
    /// within that call's dialog, sent to `server`.
    pub async fn refer_last_call(&self, server: &str, target: &str) -> String {
        let invite = self
            .invites
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a call to transfer");
        let their_from = header(&invite, "From");
        let our_to = {
            let to = header(&invite, "To");
            if to.contains("tag=") {
                to
            } else {
                format!("{to};tag=phone{}", header(&invite, "Call-ID").len())
            }
        };
        let uri = header(&invite, "Contact")
            .trim_start_matches('<')
            .split('>')
            .next()
            .unwrap_or("")
            .to_string();
        let headers = format!(
            "From: {our_to}\r\nTo: {their_from}\r\nCall-ID: {}\r\nContact: <sip:alice@{}>\r\nRefer-To: <{target}>\r\nReferred-By: <sip:alice@{}>\r\n",
            header(&invite, "Call-ID"),
            self.local,
            self.local
        );
        self.request(server, "REFER", &uri, &headers, "").await
    }
}

/// A call this phone placed and the PBX answered.
pub struct Dialog {
    /// The final response to the INVITE (a 2xx): its headers say who answered.
    pub answer: String,
    pub call_id: String,
    from: String,
    to: String,
    uri: String,
}

impl SipPhone {
    /// Calls `target` (the user part, like an orbit) at `server` as `alice@domain`, introducing
    /// itself as `user_agent` (FreeSWITCH tells only the phones it knows who they talk to); once
    /// it is answered, acknowledges it. Panics on a refusal.
    pub async fn call(&self, server: &str, target: &str, domain: &str, user_agent: &str) -> Dialog {
        let n = self.seq.load(std::sync::atomic::Ordering::SeqCst);
        let call_id = format!("call-{target}-{n}-{}", self.nonce);
        let from = format!("\"Alice\" <sip:alice@{domain}>;tag=call{n}{}", self.nonce);
        let (ip, _) = self.local.split_once(':').unwrap_or((&self.local, ""));
        let sdp = format!(
            "v=0\r\no=- 2 2 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 5174 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
        );
        let headers = format!(
            "From: {from}\r\nTo: <sip:{target}@{domain}>\r\nCall-ID: {call_id}\r\nContact: <sip:alice@{}>\r\nUser-Agent: {user_agent}\r\nAllow: INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, MESSAGE, NOTIFY, REFER\r\nContent-Type: application/sdp\r\n",
            self.local
        );
        let uri = format!("sip:{target}@{server}");
        let answer = self.request(server, "INVITE", &uri, &headers, &sdp).await;
        assert!(answer.starts_with("SIP/2.0 2"), "INVITE {uri}: {answer}");
        let cseq = header(&answer, "CSeq");
        let cseq = cseq.split(' ').next().unwrap_or("1");
        let to = header(&answer, "To");
        // The ACK of a 2xx goes to the Contact the answer names, in a transaction of its own.
        let contact = header(&answer, "Contact");
        let target_uri = contact
            .trim_start_matches('<')
            .split('>')
            .next()
            .filter(|u| !u.is_empty())
            .unwrap_or(&uri)
            .to_string();
        let ack = format!(
            "ACK {target_uri} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKack{n}x{};rport\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n",
            self.local, self.nonce
        );
        self.sock
            .send_to(ack.as_bytes(), server)
            .await
            .unwrap_or_else(|e| panic!("send ACK to {server}: {e}"));
        Dialog {
            answer,
            call_id,
            from,
            to,
            uri: target_uri,
        }
    }

    /// Hangs up a call this phone placed (BYE); returns the final response.
    pub async fn hang_up(&self, server: &str, d: &Dialog) -> String {
        let headers = format!(
            "From: {}\r\nTo: {}\r\nCall-ID: {}\r\n",
            d.from, d.to, d.call_id
        );
        self.request(server, "BYE", &d.uri, &headers, "").await
    }

    /// The requests the PBX sent within a call (re-INVITE, UPDATE, BYE...), in order.
    pub fn requests_in(&self, call_id: &str) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| header(r, "Call-ID") == call_id)
            .cloned()
            .collect()
    }
}

impl Drop for SipPhone {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The value of the first header `name` (case-insensitive), `""` when absent.
pub fn header(msg: &str, name: &str) -> String {
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
