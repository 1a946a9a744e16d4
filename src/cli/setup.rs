//! `callpark setup asterisk|freeswitch`: shows the changes, asks, writes, reloads the PBX and
//! runs the doctor on the pool.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::config::Config;
use crate::doctor::{self, Options as DoctorOptions};
use crate::setup::{self, BadInput, Plan, asterisk, freeswitch};

#[derive(Debug, Subcommand)]
pub enum SetupCmd {
    /// Write callpark.conf, include it in extensions.conf and the phones' contexts, turn on
    /// http.conf's server and ARI with callpark's user (ari.conf), then `core reload`.
    Asterisk(AsteriskArgs),
    /// Write dialplan/callpark/callpark.xml, include it first in the phones' context, set the
    /// event socket's port and password, then reload over the event socket.
    Freeswitch(FreeswitchArgs),
}

#[derive(Debug, Args)]
pub struct AsteriskArgs {
    /// The pool (a `[[pbx]]` name); the first Asterisk pool by default.
    #[arg(long, value_name = "NAME")]
    pub pool: Option<String>,
    /// Asterisk's configuration directory.
    #[arg(long, value_name = "DIR", default_value = "/etc/asterisk")]
    pub etc: PathBuf,
    /// A context the phones dial from; repeat for several. By default those of pjsip.conf's
    /// phone endpoints, else `from-internal` and `default` where they exist.
    #[arg(long = "context", value_name = "NAME")]
    pub contexts: Vec<String>,
    /// Apply without asking.
    #[arg(long)]
    pub yes: bool,
    /// The shell command that makes Asterisk load the changed files.
    #[arg(
        long,
        value_name = "CMD",
        default_value = "asterisk -rx \"core reload\""
    )]
    pub reload_command: String,
}

#[derive(Debug, Args)]
pub struct FreeswitchArgs {
    /// The pool (a `[[pbx]]` name); the first FreeSWITCH pool by default.
    #[arg(long, value_name = "NAME")]
    pub pool: Option<String>,
    /// FreeSWITCH's configuration directory (holding freeswitch.xml).
    #[arg(long, value_name = "DIR", default_value = "/etc/freeswitch")]
    pub conf: PathBuf,
    /// The dialplan context the phones dial from (their user_context).
    #[arg(long, value_name = "NAME", default_value = "default")]
    pub context: String,
    /// Apply without asking.
    #[arg(long)]
    pub yes: bool,
}

/// Exit codes: 0 set up and the doctor passes, 1 not applied (declined, no terminal without
/// --yes), not written, not reloaded, or the doctor fails, 2 bad input.
pub async fn run(cfg: &Config, cmd: &SetupCmd) -> ExitCode {
    match cmd {
        SetupCmd::Asterisk(a) => run_asterisk(cfg, a).await,
        SetupCmd::Freeswitch(a) => run_freeswitch(cfg, a).await,
    }
}

fn bad(e: BadInput) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}

async fn run_asterisk(cfg: &Config, a: &AsteriskArgs) -> ExitCode {
    let opts = asterisk::Options {
        pool: a.pool.clone(),
        etc: a.etc.clone(),
        contexts: a.contexts.clone(),
    };
    let plan = match asterisk::plan(cfg, &opts) {
        Ok(p) => p,
        Err(e) => return bad(e),
    };
    let mut ok = match write(&plan, a.yes, &a.etc.join("extensions.conf")) {
        Written::Nothing => true,
        Written::Files => reload_asterisk(&a.reload_command).await,
        Written::Not(code) => return code,
    };
    ok &= examine(
        cfg,
        DoctorOptions {
            pools: vec![plan.pool.clone()],
            contexts: plan.contexts.clone(),
            asterisk_etc: a.etc.clone(),
            ami: None,
        },
    )
    .await;
    exit(ok)
}

async fn run_freeswitch(cfg: &Config, a: &FreeswitchArgs) -> ExitCode {
    let opts = freeswitch::Options {
        pool: a.pool.clone(),
        conf: a.conf.clone(),
        context: a.context.clone(),
    };
    let fp = match freeswitch::plan(cfg, &opts) {
        Ok(p) => p,
        Err(e) => return bad(e),
    };
    let mut ok = match write(&fp.plan, a.yes, &a.conf.join("freeswitch.xml")) {
        Written::Nothing => true,
        Written::Files => reload_freeswitch(&fp).await,
        Written::Not(code) => return code,
    };
    ok &= examine(
        cfg,
        DoctorOptions {
            pools: vec![fp.plan.pool.clone()],
            contexts: fp.plan.contexts.clone(),
            asterisk_etc: PathBuf::from("/etc/asterisk"),
            ami: None,
        },
    )
    .await;
    exit(ok)
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

enum Written {
    /// Everything was set up already.
    Nothing,
    /// The changes are written.
    Files,
    /// Not applied: the exit code.
    Not(ExitCode),
}

/// Shows the plan, asks, and writes it.
fn write(plan: &Plan, yes: bool, like: &Path) -> Written {
    for n in &plan.notes {
        println!("note: {n}");
    }
    if plan.changes.is_empty() {
        println!("nothing to change: every file is set up already");
        return Written::Nothing;
    }
    for c in &plan.changes {
        print!("{}", c.diff());
    }
    if !yes {
        match confirm() {
            Ok(true) => {}
            Ok(false) => {
                eprintln!("nothing changed; re-run with --yes to apply the changes above");
                return Written::Not(ExitCode::from(1));
            }
            Err(why) => {
                eprintln!("nothing changed: {why}; re-run with --yes to apply the changes above");
                return Written::Not(ExitCode::from(1));
            }
        }
    }
    match setup::apply(&plan.changes, like) {
        Ok(done) => {
            for (p, c) in done.iter().zip(&plan.changes) {
                if c.old.is_some() {
                    println!(
                        "wrote {} (as it was before setup: {})",
                        p.display(),
                        setup::apply::backup_of(p).display()
                    );
                } else {
                    println!("wrote {} (new)", p.display());
                }
            }
            Written::Files
        }
        Err(e) => {
            eprintln!("error: {e}");
            Written::Not(ExitCode::from(1))
        }
    }
}

/// Asks on the terminal; `Err` when there is none to ask on, or no answer.
fn confirm() -> Result<bool, String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err("standard input is not a terminal, so nobody can be asked".into());
    }
    print!("Apply these changes? [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    match stdin.lock().read_line(&mut answer) {
        Ok(0) | Err(_) => Err("no answer".into()),
        Ok(_) => Ok(matches!(
            answer.trim().to_ascii_lowercase().as_str(),
            "y" | "yes"
        )),
    }
}

/// Runs the reload command; whether it succeeded.
async fn reload_asterisk(command: &str) -> bool {
    println!("reloading: {command}");
    match tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .output()
        .await
    {
        Ok(o) => {
            print!("{}", String::from_utf8_lossy(&o.stdout));
            eprint!("{}", String::from_utf8_lossy(&o.stderr));
            if o.status.success() {
                true
            } else {
                eprintln!(
                    "error: `{command}` failed ({}): load the files by hand (asterisk -rx \"core reload\" as a user who may), or name the command with --reload-command",
                    o.status
                );
                false
            }
        }
        Err(e) => {
            eprintln!(
                "error: cannot run `sh -c {command}` ({e}): load the files by hand, or name the command with --reload-command"
            );
            false
        }
    }
}

/// Reloads FreeSWITCH over the event socket, and waits for a reloaded socket to answer.
async fn reload_freeswitch(fp: &freeswitch::FsPlan) -> bool {
    println!("reloading over the event socket at {}", fp.before.address);
    match setup::esl::reload(&fp.before, &fp.after, fp.event_socket_changed).await {
        Ok(said) => {
            for s in said {
                println!("  {s}");
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            return false;
        }
    }
    if fp.event_socket_changed && !setup::esl::wait_for(&fp.after).await {
        eprintln!(
            "error: the event socket does not answer at {} with the new password after its reload: FreeSWITCH's log tells why (a port in use, an address it cannot bind)",
            fp.after.address
        );
        return false;
    }
    true
}

/// Runs the doctor on the pool and prints its report; whether a park would work.
async fn examine(cfg: &Config, opts: DoctorOptions) -> bool {
    println!();
    let reports = doctor::examine(cfg, &opts).await;
    print!("{}", doctor::text(&reports));
    reports.iter().all(doctor::PoolReport::works)
}
