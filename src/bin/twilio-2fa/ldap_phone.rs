//! `twilio-2fa ldap-phone USER [--config PATH]`: prints USER's number from
//! LDAP, for `[phones] command = "/usr/bin/twilio-2fa ldap-phone %u"`.
//! The command protocol: the number on stdout and exit 0; nothing and exit
//! 0 when the directory has none; exit 1 and a reason (on stderr and in the
//! system log, as the module discards stderr) when the lookup failed; exit
//! 2 and clap's usage on stderr for arguments it cannot read. The module
//! never passes a name that starts with '-' (phones.command refuses it);
//! typed by hand, such a name goes after `--`.

use crate::cli::LdapPhoneArgs;
use pam_twilio_2fa::conversation::escape_for_display;
use pam_twilio_2fa::ldap::{self, LdapConfig};
use std::os::unix::ffi::OsStrExt;

pub fn run(a: LdapPhoneArgs) -> Result<(), String> {
    let user = &a.user;
    let config = &a.config;
    let shown = escape_for_display(&user.to_string_lossy());
    let found = LdapConfig::load(config).and_then(|cfg| ldap::lookup(&cfg, user.as_bytes()));
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
