//! `twilio-2fa user set|show|remove|list`: numbers on file, managed by root.

use crate::admin_args;
use crate::cli::UserCommand;
use pam_twilio_2fa::config::Config;
use pam_twilio_2fa::conversation::escape_for_display as shown;
use pam_twilio_2fa::events::Record;
use pam_twilio_2fa::number_policy::{check_new_number, check_number};
use pam_twilio_2fa::phone::PhoneNumber;
use pam_twilio_2fa::phone_book::{PhoneBook, PhoneDirectory, SourceError, Sources};
use pam_twilio_2fa::state::StateDir;
use pam_twilio_2fa::twilio_client::TwilioClient;
use pam_twilio_2fa::users::{SystemUsers, UserDb};
use std::ffi::OsString;
use std::time::Duration;

pub fn run(command: UserCommand) -> Result<(), String> {
    match command {
        UserCommand::Set {
            user,
            number,
            no_lookup,
            config,
        } => {
            let cfg = admin_args::load("user set", &config.path)?;
            set(&cfg, &user_name(&user)?, &number, !no_lookup)
        }
        UserCommand::Show { user, full, config } => {
            let cfg = admin_args::load("user show", &config.path)?;
            show(&cfg, &user_name(&user)?, full)
        }
        UserCommand::Remove { user, config } => {
            let cfg = admin_args::load("user remove", &config.path)?;
            remove(&cfg, &user_name(&user)?)
        }
        UserCommand::List { config } => list(&admin_args::load("user list", &config.path)?),
    }
}

/// User names here must be text: they name files and go into logs.
fn user_name(typed: &OsString) -> Result<String, String> {
    typed
        .to_str()
        .map(String::from)
        .ok_or_else(|| "the user name is not valid UTF-8".into())
}

/// The account's own name (pw_name), which the module keys numbers by; a
/// name the system no longer knows stays as typed, so a departed user's
/// number can still be shown and removed.
fn account_name(typed: &str) -> Result<String, String> {
    match SystemUsers.lookup(typed) {
        Ok(Some(account)) => Ok(account.name),
        Ok(None) => Ok(typed.to_string()),
        Err(e) => Err(format!("{}: cannot look up the user: {e}", shown(typed))),
    }
}

fn directory(cfg: &Config) -> Result<PhoneDirectory, String> {
    cfg.phones_directory
        .clone()
        .map(|path| PhoneDirectory { path })
        .ok_or_else(|| {
            "no [phones] directory is configured: there is nowhere to store numbers".into()
        })
}

/// Runs `change` on the user's number file under the user's state lock,
/// the lock a login holds when it stores a number: a login that began
/// before this change then sees it and does not overwrite it. When `change`
/// changed the number (returns true), the user's remembered logins end (a
/// lost phone must revoke them); returns that and how many ended.
fn under_user_lock(
    cfg: &Config,
    user: &str,
    mut change: impl FnMut() -> Result<bool, SourceError>,
) -> Result<(bool, usize), String> {
    let state = StateDir::new(
        cfg.state_dir.clone(),
        Duration::from_secs(2 * cfg.http_timeout + 2),
    );
    let mut out = None;
    state
        .update_raw(user.as_bytes(), &mut |st| {
            out = Some(change().map(|changed| {
                let dropped = if changed { st.forget_remembered() } else { 0 };
                (changed, dropped)
            }));
        })
        .map_err(|e| format!("{e} (the number was not changed)"))?;
    match out {
        Some(result) => result.map_err(|e| e.to_string()),
        None => Err("the state file was not read; nothing was changed".into()),
    }
}

fn log_remembered_ended(cfg: &Config, user: &str, count: usize, reason: &str) {
    if count > 0 {
        admin_args::log_event(
            cfg,
            Record::event("remembered_ended")
                .with("user", user)
                .with("count", count.to_string())
                .with("reason", reason),
        );
    }
}

fn set(cfg: &Config, typed: &str, raw: &str, use_lookup: bool) -> Result<(), String> {
    // The module keys numbers by the account's own name (pw_name), so a
    // number stored under another capitalisation would never be read.
    let user = match SystemUsers.lookup(typed) {
        Ok(Some(account)) => account.name,
        Ok(None) => return Err(format!("{}: no such user on this system", shown(typed))),
        Err(e) => return Err(format!("{}: cannot look up the user: {e}", shown(typed))),
    };
    let client = TwilioClient::new(cfg);
    let n = check_new_number(raw, cfg, &client, use_lookup).map_err(|r| {
        let mut m = format!("{}: {}", shown(raw), r.message());
        if let pam_twilio_2fa::number_policy::Rejection::LookupUnavailable(why) = &r {
            m.push_str(&format!(" ({why}; --no-lookup skips the carrier check)"));
        }
        m
    })?;
    let dir = directory(cfg)?;
    let (_, dropped) = under_user_lock(cfg, &user, || dir.store(&user, n.e164()).map(|()| true))?;
    admin_args::log_event(
        cfg,
        Record::event("phone_set")
            .with("user", user.as_str())
            .with("to", n.masked_e164()),
    );
    log_remembered_ended(cfg, &user, dropped, "phone_set");
    println!(
        "{}: {} stored in {}",
        shown(&user),
        n.masked_e164(),
        shown(&dir.path.join(&user).display().to_string())
    );
    Ok(())
}

fn show(cfg: &Config, typed: &str, full: bool) -> Result<(), String> {
    let user = account_name(typed)?;
    match Sources::from_config(cfg)
        .find(&user)
        .map_err(|e| e.to_string())?
    {
        None => println!("{}: no number on file", shown(&user)),
        Some(f) => {
            let number = match check_number(&f.number, cfg) {
                Ok(n) if full => format!("{} ({})", n.e164(), n.national()),
                Ok(n) => n.masked_e164(),
                Err(r) => format!("{} [refused: {}]", mask_raw(&f.number, full), r.message()),
            };
            println!("{}: {number} from the {} source", shown(&user), f.source);
        }
    }
    Ok(())
}

/// A number that does not parse is still masked unless --full.
fn mask_raw(raw: &str, full: bool) -> String {
    if full {
        // It came from a file or a program: it must not drive the terminal.
        return shown(raw);
    }
    match PhoneNumber::parse(raw, "") {
        Ok(n) => n.masked_e164(),
        Err(_) => "(unreadable)".into(),
    }
}

fn remove(cfg: &Config, typed: &str) -> Result<(), String> {
    let user = account_name(typed)?;
    let name = shown(&user);
    let sources = Sources::from_config(cfg);
    let dir = directory(cfg)?;
    let (removed, dropped) = under_user_lock(cfg, &user, || dir.remove(&user))?;
    if removed {
        admin_args::log_event(
            cfg,
            Record::event("phone_removed").with("user", user.as_str()),
        );
        log_remembered_ended(cfg, &user, dropped, "phone_removed");
        println!(
            "{name}: number removed from {}",
            shown(&dir.path.display().to_string())
        );
        if let Ok(Some(f)) = sources.find(&user) {
            println!(
                "{name}: note: the {} source still has a number for this user",
                f.source
            );
        }
        return Ok(());
    }
    match sources.find(&user) {
        Ok(Some(f)) => Err(format!(
            "{name}: the number comes from the read-only {} source; change it there",
            f.source
        )),
        _ => Err(format!("{name}: no number on file")),
    }
}

fn list(cfg: &Config) -> Result<(), String> {
    let sources = Sources::from_config(cfg);
    let mut rows = Vec::new();
    if let Some(f) = &sources.file {
        for (user, number) in f.all().map_err(|e| e.to_string())? {
            rows.push((user, mask_raw(&number, false), "file"));
        }
    }
    if let Some(d) = &sources.directory {
        for user in d.users().map_err(|e| e.to_string())? {
            let number = d.lookup(&user).ok().flatten().unwrap_or_default();
            rows.push((user, mask_raw(&number, false), "directory"));
        }
    }
    for (user, number, source) in rows {
        println!("{:<24} {number:<16} {source}", shown(&user));
    }
    Ok(())
}
