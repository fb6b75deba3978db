//! `twilio-2fa ldap-phone USER [--config PATH]`: prints USER's number from
//! LDAP, for `[phones] command = "/usr/bin/twilio-2fa ldap-phone %u"`.
//! The command protocol: the number on stdout and exit 0; nothing and exit
//! 0 when the directory has none; exit 1 and a reason (on stderr and in the
//! system log, as the module discards stderr) when the lookup failed.

use pam_twilio_2fa::conversation::escape_for_display;
use pam_twilio_2fa::ldap::{self, config::DEFAULT_PATH, LdapConfig};
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

const USAGE: &str = "usage: twilio-2fa ldap-phone USER [--config PATH]";

pub fn run(args: &[OsString]) -> Result<(), String> {
    let mut config = PathBuf::from(DEFAULT_PATH);
    let mut users = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("--config") => config = PathBuf::from(it.next().ok_or("--config needs a path")?),
            Some(s) if s.starts_with('-') => return Err(format!("unknown option {s}\n{USAGE}")),
            _ => users.push(a),
        }
    }
    let [user] = users.as_slice() else {
        return Err(USAGE.into());
    };
    let shown = escape_for_display(&user.to_string_lossy());
    let found = LdapConfig::load(&config).and_then(|cfg| ldap::lookup(&cfg, user.as_bytes()));
    match found {
        Ok(Some(number)) => {
            println!("{number}");
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => {
            let e = format!("ldap-phone {shown}: {e}");
            ldap::log_error(&e);
            Err(e)
        }
    }
}
