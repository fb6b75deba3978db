//! `twilio-2fa policy USER`: the settings a user logs in with, and where
//! each comes from (a `[[policy]]` block, the top level, or the default).

use crate::admin_args;
use pam_twilio_2fa::conversation::escape_for_display;
use pam_twilio_2fa::policy::{effective, source_of, value_of, KEYS};
use pam_twilio_2fa::users::{SystemUsers, UserDb};
use std::ffi::OsString;

pub fn run(args: &[OsString]) -> Result<(), String> {
    let a = admin_args::parse("policy USER [--config PATH]", args, &[], 1)?;
    let typed = a.positional[0]
        .to_str()
        .ok_or("the user name must be UTF-8")?;
    let shown = escape_for_display(typed);
    // The same lookups a login makes, so the answer is the login's answer.
    let account = SystemUsers
        .lookup(typed)
        .map_err(|e| format!("cannot look up {shown}: {e}"))?
        .ok_or_else(|| format!("no such user: {shown}"))?;
    let (cfg, block) = effective(&a.cfg, &account, &SystemUsers).map_err(|e| {
        format!("a login by {shown} would be denied: cannot decide which [[policy]] applies: {e}")
    })?;
    let name = escape_for_display(&account.name);
    match block {
        Some(i) => println!("user {name}: policy[{}] applies", i + 1),
        None => println!("user {name}: no [[policy]] block applies"),
    }
    for key in KEYS {
        let value = escape_for_display(&value_of(&cfg, key));
        println!("{key} = {value}  # {}", source_of(&a.cfg, block, key));
    }
    Ok(())
}
