//! `twilio-2fa policy USER`: the settings a user logs in with, and where
//! each comes from (a `[[policy]]` block, the top level, or the default).

use crate::admin_args;
use crate::cli::UserArgs;
use pam_twilio_2fa::conversation::escape_for_display;
use pam_twilio_2fa::policy::{effective, source_of, value_of, KEYS};
use pam_twilio_2fa::users::{SystemUsers, UserDb};

pub fn run(a: UserArgs) -> Result<(), String> {
    let base = admin_args::load("policy", &a.config.path)?;
    let typed = a.user.to_str().ok_or("the user name must be UTF-8")?;
    let shown = escape_for_display(typed);
    // The same lookups a login makes, so the answer is the login's answer.
    let account = SystemUsers
        .lookup(typed)
        .map_err(|e| format!("cannot look up {shown}: {e}"))?
        .ok_or_else(|| format!("no such user: {shown}"))?;
    let (cfg, block) = effective(&base, &account, &SystemUsers).map_err(|e| {
        format!("a login by {shown} would be denied: cannot decide which [[policy]] applies: {e}")
    })?;
    let name = escape_for_display(&account.name);
    match block {
        Some(i) => println!("user {name}: policy[{}] applies", i + 1),
        None => println!("user {name}: no [[policy]] block applies"),
    }
    for key in KEYS {
        let value = escape_for_display(&value_of(&cfg, key));
        println!("{key} = {value}  # {}", source_of(&base, block, key));
    }
    Ok(())
}
