//! `gather` against stand-ins that speak ARI's HTTP and AMI's framing as Asterisk 22 does
//! (status codes and bodies from res_ari.c and the api-docs, responses from manager.c): the
//! requests, credentials and replies on the wire, without a PBX.

use std::collections::HashMap;

use axum::Router;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::doctor::{Ami, Status};
use crate::pbx::asterisk::dialplan::generate;
use crate::pbx::stamp;

/// `callpark:callpark-testbed`, as HTTP basic authentication sends it.
const AUTH: &str = "Basic Y2FsbHBhcms6Y2FsbHBhcmstdGVzdGJlZA==";

fn cfg() -> Config {
    let text = include_str!("../../../contrib/callpark.example.toml");
    Config::from_toml(text, "callpark.example.toml").unwrap()
}

/// An ARI whose user `callpark` may write, or is read-only.
async fn ari(read_only: bool) -> String {
    let authed = |h: &HeaderMap| h.get("authorization").and_then(|v| v.to_str().ok()) == Some(AUTH);
    let unauthorized = (
        StatusCode::UNAUTHORIZED,
        r#"{"message":"Authentication required"}"#.to_string(),
    );
    let app = Router::new()
        .route(
            "/ari/asterisk/info",
            get(move |h: HeaderMap| async move {
                if !authed(&h) {
                    return unauthorized;
                }
                (
                    StatusCode::OK,
                    r#"{"system":{"version":"22.5.2","entity_id":"x"},"build":{},"status":{}}"#
                        .to_string(),
                )
            }),
        )
        .route(
            "/ari/channels/{id}/variable",
            post(
                move |h: HeaderMap, Query(q): Query<HashMap<String, String>>| async move {
                    assert_eq!(
                        q.get("variable").map(String::as_str),
                        Some("CALLPARK_DOCTOR")
                    );
                    if !authed(&h) {
                        (StatusCode::UNAUTHORIZED, String::new())
                    } else if read_only {
                        (
                            StatusCode::FORBIDDEN,
                            r#"{"message":"Write access denied"}"#.to_string(),
                        )
                    } else {
                        (
                            StatusCode::NOT_FOUND,
                            r#"{"message":"Channel not found"}"#.to_string(),
                        )
                    }
                },
            ),
        )
        .route(
            "/ari/applications",
            get(|| async { r#"[{"name":"callpark","channel_ids":[]}]"# }),
        );
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    format!("http://{addr}")
}

fn header<'a>(msg: &'a str, key: &str) -> &'a str {
    msg.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or("")
}

/// An AMI that takes user `callpark` with `secret`, sends an event before each command's
/// response (as a session with events on might), and answers the doctor's commands.
async fn ami(secret: &'static str, stamp: String) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        s.write_all(b"Asterisk Call Manager/9.0.0\r\n")
            .await
            .unwrap();
        let mut buf = String::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = s.read(&mut chunk).await.unwrap();
            if n == 0 {
                return;
            }
            buf.push_str(std::str::from_utf8(&chunk[..n]).unwrap());
            while let Some(i) = buf.find("\r\n\r\n") {
                let req: String = buf.drain(..i + 4).collect();
                let id = header(&req, "ActionID");
                let reply = match header(&req, "Action") {
                    "Login" if header(&req, "Secret") == secret => {
                        assert_eq!(header(&req, "Events"), "off");
                        format!(
                            "Response: Success\r\nActionID: {id}\r\nMessage: Authentication accepted\r\n\r\n"
                        )
                    }
                    "Login" => {
                        format!(
                            "Response: Error\r\nActionID: {id}\r\nMessage: Authentication failed\r\n\r\n"
                        )
                    }
                    "Command" => {
                        let out = match header(&req, "Command") {
                            "dialplan show callpark-stamp@callpark-down" => format!(
                                "[ Context 'callpark-down' created by 'pbx_config' ]\n  'callpark-stamp' => 1. NoOp(callpark-stamp {stamp})   [callpark.conf:93]\n\n-= 1 extension (1 priority) in 1 context. =-"
                            ),
                            "moh show classes" => {
                                "Class: default\n\tMode: files\n\tDirectory: moh".into()
                            }
                            c if c.starts_with("dialplan show park") => {
                                let code = c["dialplan show ".len()..].split('@').next().unwrap();
                                format!(
                                    "[ Included context 'callpark' created by 'pbx_config' ]\n  '{code}' =>  1. GotoIf($[\"${{BLINDTRANSFER}}\" = \"\"]?direct)   [callpark.conf:6]\n       3. Stasis(callpark,park,,,moh)   [callpark.conf:8]\n\n-= 1 extension (8 priorities) in 1 context. =-"
                                )
                            }
                            other => format!("No such command '{other}'"),
                        };
                        let lines: String =
                            out.lines().map(|l| format!("Output: {l}\r\n")).collect();
                        format!(
                            "Event: VarSet\r\nVariable: X\r\n\r\nResponse: Success\r\nActionID: {id}\r\nMessage: Command output follows\r\n{lines}\r\n"
                        )
                    }
                    _ => format!(
                        "Response: Goodbye\r\nActionID: {id}\r\nMessage: Thanks for all the fish.\r\n\r\n"
                    ),
                };
                s.write_all(reply.as_bytes()).await.unwrap();
            }
        }
    });
    addr.to_string()
}

fn setup(
    address: String,
    ami_at: String,
    ami_secret: &str,
) -> (Config, PbxConfig, Options, tempfile::TempDir) {
    let c = cfg();
    let mut p = c.pbx.iter().find(|p| p.name == "pbx-a").unwrap().clone();
    p.address = address;
    let d = tempfile::TempDir::new().unwrap();
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/asterisk/doctor");
    for e in std::fs::read_dir(data).unwrap() {
        let f = e.unwrap().path();
        std::fs::copy(&f, d.path().join(f.file_name().unwrap())).unwrap();
    }
    std::fs::write(d.path().join("callpark.conf"), generate(&c, "pbx-a")).unwrap();
    let opts = Options {
        asterisk_etc: d.path().to_path_buf(),
        ami: Some(Ami {
            address: ami_at,
            username: "callpark".into(),
            secret: ami_secret.into(),
        }),
        ..Options::default()
    };
    (c, p, opts, d)
}

#[tokio::test]
async fn gather_asks_ari_and_ami_as_asterisk_answers() {
    let want = stamp::find(&generate(&cfg(), "pbx-a")).unwrap();
    let (c, p, opts, _d) = setup(
        ari(false).await,
        ami("callpark-testbed-ami", want.clone()).await,
        "callpark-testbed-ami",
    );
    let f = gather(&c, &p, "callpark-testbed", &opts).await;
    assert!(
        matches!(&f.info, Answer::Ok(b) if b.contains("22.5.2")),
        "{:?}",
        f.info
    );
    assert_eq!(
        f.write,
        Some(Answer::Status(404, "Channel not found".into()))
    );
    let a = f.ami.as_ref().unwrap();
    assert_eq!(a.connect, None);
    assert!(a.stamp.as_ref().unwrap().as_ref().unwrap().contains(&want));
    let codes: Vec<(&str, &str)> = a
        .park_codes
        .iter()
        .map(|(ctx, code, _)| (ctx.as_str(), code.as_str()))
        .collect();
    assert_eq!(codes, [("park-in", "park"), ("park-in", "park-reception")]);
    let cs = checks(&c, &p, &opts, &f);
    assert!(cs.iter().all(|ch| ch.status == Status::Ok), "{cs:#?}");
}

#[tokio::test]
async fn gather_sees_a_wrong_password_a_read_only_user_and_a_refused_manager_login() {
    let (c, p, opts, _d) = setup(ari(false).await, "127.0.0.1:1".into(), "x");
    let f = gather(&c, &p, "not-the-password", &opts).await;
    assert_eq!(
        f.info,
        Answer::Status(401, "Authentication required".into())
    );
    assert!(f.write.is_none() && f.ami.is_none());

    let (c, p, opts, _d) = setup(
        ari(true).await,
        ami("callpark-testbed-ami", String::new()).await,
        "wrong",
    );
    let f = gather(&c, &p, "callpark-testbed", &opts).await;
    assert_eq!(
        f.write,
        Some(Answer::Status(403, "Write access denied".into()))
    );
    assert_eq!(
        f.ami.unwrap().connect,
        Some(ami::AmiError::Refused("Authentication failed".into()))
    );
}

#[tokio::test]
async fn nothing_listening_is_unreachable_not_an_error() {
    let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let (c, p, opts, _d) = setup(format!("http://{addr}"), addr.to_string(), "x");
    let f = gather(&c, &p, "x", &opts).await;
    assert!(matches!(f.info, Answer::Unreachable(_)), "{:?}", f.info);
    let r = ami::Session::login(&addr.to_string(), "callpark", "x").await;
    assert!(matches!(r, Err(ami::AmiError::Unreachable(_))));
}
