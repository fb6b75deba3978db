//! `twilio-2fa user set|show|remove|list`: numbers on file, managed by root.

use crate::admin_args::{self, AdminArgs};
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

pub fn run(args: &[OsString]) -> Result<(), String> {
    match args.first().and_then(|a| a.to_str()) {
        Some("set") => set(&args[1..]),
        Some("show") => show(&args[1..]),
        Some("remove") => remove(&args[1..]),
        Some("list") => list(&args[1..]),
        _ => Err("usage: twilio-2fa user set USER NUMBER [--no-lookup] | show USER [--full] | remove USER | list   (each takes --config PATH)".into()),
    }
}

/// User names here must be text: they name files and go into logs.
fn user_name(a: &AdminArgs) -> Result<String, String> {
    a.positional[0]
        .to_str()
        .map(String::from)
        .ok_or_else(|| "the user name is not valid UTF-8".into())
}

/// The account's own name (pw_name), which the module keys numbers by; a
/// name the system no longer knows stays as typed, so a departed user's
/// number can still be shown and removed.
fn account_name(a: &AdminArgs) -> Result<String, String> {
    let typed = user_name(a)?;
    match SystemUsers.lookup(&typed) {
        Ok(Some(account)) => Ok(account.name),
        Ok(None) => Ok(typed),
        Err(e) => Err(format!("{}: cannot look up the user: {e}", shown(&typed))),
    }
}

fn directory(a: &AdminArgs) -> Result<PhoneDirectory, String> {
    a.cfg
        .phones_directory
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
    a: &AdminArgs,
    user: &str,
    mut change: impl FnMut() -> Result<bool, SourceError>,
) -> Result<(bool, usize), String> {
    let state = StateDir::new(
        a.cfg.state_dir.clone(),
        Duration::from_secs(2 * a.cfg.http_timeout + 2),
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

fn log_remembered_ended(a: &AdminArgs, user: &str, count: usize, reason: &str) {
    if count > 0 {
        admin_args::log_event(
            &a.cfg,
            Record::event("remembered_ended")
                .with("user", user)
                .with("count", count.to_string())
                .with("reason", reason),
        );
    }
}

fn set(args: &[OsString]) -> Result<(), String> {
    let a = admin_args::parse(
        "user set USER NUMBER [--no-lookup] [--config PATH]",
        args,
        &["--no-lookup"],
        2,
    )?;
    let typed = user_name(&a)?;
    // The module keys numbers by the account's own name (pw_name), so a
    // number stored under another capitalisation would never be read.
    let user = match SystemUsers.lookup(&typed) {
        Ok(Some(account)) => account.name,
        Ok(None) => return Err(format!("{}: no such user on this system", shown(&typed))),
        Err(e) => return Err(format!("{}: cannot look up the user: {e}", shown(&typed))),
    };
    let raw = a.positional[1].to_string_lossy();
    let use_lookup = !a.switches.iter().any(|s| s == "--no-lookup");
    let client = TwilioClient::new(&a.cfg);
    let n = check_new_number(&raw, &a.cfg, &client, use_lookup).map_err(|r| {
        let mut m = format!("{}: {}", shown(&raw), r.message());
        if let pam_twilio_2fa::number_policy::Rejection::LookupUnavailable(why) = &r {
            m.push_str(&format!(" ({why}; --no-lookup skips the carrier check)"));
        }
        m
    })?;
    let dir = directory(&a)?;
    let (_, dropped) = under_user_lock(&a, &user, || dir.store(&user, n.e164()).map(|()| true))?;
    admin_args::log_event(
        &a.cfg,
        Record::event("phone_set")
            .with("user", user.as_str())
            .with("to", n.masked_e164()),
    );
    log_remembered_ended(&a, &user, dropped, "phone_set");
    println!(
        "{}: {} stored in {}",
        shown(&user),
        n.masked_e164(),
        shown(&dir.path.join(&user).display().to_string())
    );
    Ok(())
}

fn show(args: &[OsString]) -> Result<(), String> {
    let a = admin_args::parse(
        "user show USER [--full] [--config PATH]",
        args,
        &["--full"],
        1,
    )?;
    let user = account_name(&a)?;
    let full = a.switches.iter().any(|s| s == "--full");
    match Sources::from_config(&a.cfg)
        .find(&user)
        .map_err(|e| e.to_string())?
    {
        None => println!("{}: no number on file", shown(&user)),
        Some(f) => {
            let number = match check_number(&f.number, &a.cfg) {
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

fn remove(args: &[OsString]) -> Result<(), String> {
    let a = admin_args::parse("user remove USER [--config PATH]", args, &[], 1)?;
    let user = account_name(&a)?;
    let name = shown(&user);
    let sources = Sources::from_config(&a.cfg);
    let dir = directory(&a)?;
    let (removed, dropped) = under_user_lock(&a, &user, || dir.remove(&user))?;
    if removed {
        admin_args::log_event(
            &a.cfg,
            Record::event("phone_removed").with("user", user.as_str()),
        );
        log_remembered_ended(&a, &user, dropped, "phone_removed");
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

fn list(args: &[OsString]) -> Result<(), String> {
    let a = admin_args::parse("user list [--config PATH]", args, &[], 0)?;
    let sources = Sources::from_config(&a.cfg);
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
