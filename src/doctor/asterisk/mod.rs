//! The doctor for an Asterisk `[[pbx]]`: ARI as callpark uses it (the user, its right to
//! write, callpark's application), Asterisk's configuration files (the include and where the
//! phones' contexts reach it, the lint, ari.conf's channelvars, pjsip.conf's caller id
//! updates, music classes) and, when the manager interface is given, what Asterisk has
//! loaded: files can be right while Asterisk still runs an older dial plan.

pub mod ami;
mod checks;
mod contexts;
pub mod files;
mod settings;

use reqwest::Method;

use super::{Check, Options};
use crate::config::{Config, PbxConfig};
use crate::pbx::asterisk::rest::{Ari, AriError};

pub use checks::checks;
pub use contexts::{park_codes, phone_contexts};
pub use files::Etc;

/// What one ARI request came back with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A success, with its body.
    Ok(String),
    /// An HTTP error status and ARI's message.
    Status(u16, String),
    /// No HTTP answer (refused, timed out, not HTTP): why.
    Unreachable(String),
}

impl From<Result<String, AriError>> for Answer {
    fn from(r: Result<String, AriError>) -> Answer {
        match r {
            Ok(body) => Answer::Ok(body),
            Err(AriError::Status {
                status, message, ..
            }) => Answer::Status(status.as_u16(), message),
            Err(e) => Answer::Unreachable(e.to_string()),
        }
    }
}

/// What the manager interface said, each command's output or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmiFacts {
    /// Why no session could be had; `None` when logged in.
    pub connect: Option<ami::AmiError>,
    /// `dialplan show callpark-stamp@callpark-down`.
    pub stamp: Option<Result<String, String>>,
    /// `(context, code, dialplan show <code>@<context>)` for each park code and phone context.
    pub park_codes: Vec<(String, String, Result<String, String>)>,
    /// `moh show classes`.
    pub moh: Option<Result<String, String>>,
}

/// Everything the checks look at.
#[derive(Debug, Clone)]
pub struct Facts {
    /// `GET /ari/asterisk/info`.
    pub info: Answer,
    /// `POST /ari/channels/callpark-doctor-probe/variable`: whether the user may write.
    pub write: Option<Answer>,
    /// `GET /ari/applications`.
    pub apps: Option<Answer>,
    pub etc: Etc,
    /// Only when `--ami` is given.
    pub ami: Option<AmiFacts>,
}

/// A channel id no channel has: the request is refused for the channel, or before that for
/// the user (see `checks::write`).
const PROBE: &str = "/channels/callpark-doctor-probe/variable";

/// Asks Asterisk, and reads its files, for everything the checks need.
pub async fn gather(cfg: &Config, pbx: &PbxConfig, password: &str, opts: &Options) -> Facts {
    let user = pbx.username.as_deref().unwrap_or_default();
    let ari = Ari::new(pbx.address.trim(), user, password);
    let info = Answer::from(ari.call(Method::GET, "/asterisk/info", &[]).await);
    let etc = files::read(&opts.asterisk_etc);
    let mut f = Facts {
        info,
        write: None,
        apps: None,
        etc,
        ami: None,
    };
    if !matches!(f.info, Answer::Ok(_)) {
        return f;
    }
    f.write = Some(Answer::from(
        ari.call(
            Method::POST,
            PROBE,
            &[("variable", "CALLPARK_DOCTOR"), ("value", "1")],
        )
        .await,
    ));
    f.apps = Some(Answer::from(
        ari.call(Method::GET, "/applications", &[]).await,
    ));
    if let Some(a) = &opts.ami {
        f.ami = Some(ask_ami(cfg, pbx, opts, &f.etc, a).await);
    }
    f
}

async fn ask_ami(
    cfg: &Config,
    pbx: &PbxConfig,
    opts: &Options,
    etc: &Etc,
    a: &super::Ami,
) -> AmiFacts {
    let mut s = match ami::Session::login(a.address.trim(), &a.username, &a.secret).await {
        Ok(s) => s,
        Err(e) => {
            return AmiFacts {
                connect: Some(e),
                stamp: None,
                park_codes: Vec::new(),
                moh: None,
            };
        }
    };
    let stamp = Some(
        s.command("dialplan show callpark-stamp@callpark-down")
            .await,
    );
    let mut codes = Vec::new();
    for (ctx, _) in phone_contexts(opts, etc) {
        for code in park_codes(cfg, pbx) {
            let out = s.command(&format!("dialplan show {code}@{ctx}")).await;
            codes.push((ctx.clone(), code, out));
        }
    }
    let moh = Some(s.command("moh show classes").await);
    s.logoff().await;
    AmiFacts {
        connect: None,
        stamp,
        park_codes: codes,
        moh,
    }
}

/// Runs the checks of one Asterisk pool.
pub async fn examine(cfg: &Config, pbx: &PbxConfig, opts: &Options) -> Vec<Check> {
    if let Some(c) = checks::settings_of(pbx) {
        return vec![c];
    }
    let password = match super::secret_of(pbx) {
        Ok(p) => p,
        Err(c) => return vec![c],
    };
    let facts = gather(cfg, pbx, &password, opts).await;
    checks(cfg, pbx, opts, &facts)
}

#[cfg(test)]
mod gather_tests;
#[cfg(test)]
mod tests;
