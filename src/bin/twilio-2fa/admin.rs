//! `twilio-2fa status|unlock|forget USER`: what an administrator needs to see
//! and reset in a user's state.

use crate::admin_args;
use crate::cli::UserArgs;
use pam_twilio_2fa::clock::{iso_time, Clock, SystemClock};
use pam_twilio_2fa::config::Config;
use pam_twilio_2fa::conversation::escape_for_display;
use pam_twilio_2fa::events::Record;
use pam_twilio_2fa::phone::PhoneNumber;
use pam_twilio_2fa::state::{StateDir, UserState};
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

struct Target {
    user: OsString,
    cfg: Config,
    dir: StateDir,
}

/// `USER [--config PATH]`, as root.
fn target(command: &str, a: UserArgs) -> Result<Target, String> {
    let cfg = admin_args::load(command, &a.config.path)?;
    let dir = StateDir::new(
        cfg.state_dir.clone(),
        Duration::from_secs(2 * cfg.http_timeout + 2),
    );
    Ok(Target {
        user: a.user,
        cfg,
        dir,
    })
}

/// For display only: state is keyed by the name's raw bytes.
fn shown(user: &OsString) -> String {
    escape_for_display(&user.to_string_lossy())
}

fn log_event(t: &Target, name: &str) {
    admin_args::log_event(&t.cfg, Record::event(name).with("user", shown(&t.user)));
}

pub fn status(a: UserArgs) -> Result<(), String> {
    let t = target("status", a)?;
    t.dir.ensure().map_err(|e| e.to_string())?;
    let mut state = UserState::default();
    t.dir
        .update_raw(t.user.as_bytes(), &mut |s| state = s.clone())
        .map_err(|e| format!("{e}\n(`twilio-2fa unlock` replaces a damaged file)"))?;
    print!("{}", describe(&t, &state, SystemClock.now()));
    Ok(())
}

fn describe(t: &Target, s: &UserState, now: u64) -> String {
    let when = |at: u64| {
        let rel = if at > now {
            format!("in {} s", at - now)
        } else {
            format!("{} s ago", now - at)
        };
        format!("{} ({rel})", iso_time(at))
    };
    let mut out = format!(
        "user           {}\nstate file     {}\nattempts used  {} of {}\n",
        shown(&t.user),
        t.dir.file_for(t.user.as_bytes()).display(),
        s.attempts,
        t.cfg.max_attempts
    );
    out.push_str(&format!(
        "locked until   {}\n",
        s.lockout_left(now)
            .map(|_| when(s.locked_until.unwrap_or(0)))
            .unwrap_or_else(|| "- (not locked)".into())
    ));
    let last = s.pending.as_ref().map(|p| {
        let to = PhoneNumber::parse(&p.to, "")
            .map(|n| n.masked_e164())
            .unwrap_or_else(|_| "?".into());
        format!("{} by {} to {to}", when(p.sent_at), p.method.name())
    });
    out.push_str(&format!(
        "last send      {}\n",
        last.unwrap_or_else(|| "-".into())
    ));
    if s.remembered.is_empty() {
        out.push_str("remembered     -\n");
    }
    for r in &s.remembered {
        let live = t.cfg.remember > 0 && now < r.verified_at + t.cfg.remember;
        out.push_str(&format!(
            "remembered     {} verified {}{}\n",
            escape_for_display(&r.origin),
            when(r.verified_at),
            if live { "" } else { " (expired)" }
        ));
    }
    out
}

pub fn unlock(a: UserArgs) -> Result<(), String> {
    let t = target("unlock", a)?;
    let mut was_damaged = false;
    t.dir
        .reset(t.user.as_bytes(), &mut |old| {
            was_damaged = old.is_none();
            UserState {
                attempts: 0,
                locked_until: None,
                ..old.unwrap_or_default()
            }
        })
        .map_err(|e| e.to_string())?;
    log_event(&t, "unlocked");
    println!(
        "{}: attempts cleared and lockout lifted{}",
        shown(&t.user),
        if was_damaged {
            " (the state file was missing or damaged and was replaced)"
        } else {
            ""
        }
    );
    Ok(())
}

pub fn forget(a: UserArgs) -> Result<(), String> {
    let t = target("forget", a)?;
    t.dir.ensure().map_err(|e| e.to_string())?;
    t.dir
        .update_raw(t.user.as_bytes(), &mut |s| s.remembered.clear())
        .map_err(|e| e.to_string())?;
    log_event(&t, "forgotten");
    println!("{}: remembered hosts dropped", shown(&t.user));
    Ok(())
}
