//! What the module does when PAM runs without root: a screen locker
//! (xscreensaver, swaylock, i3lock, kscreenlocker) runs the stack as the
//! logged-in user and cannot read the root-only config, so the module must
//! decide before the config is read, from its `unprivileged=` argument alone.
//!
//! Such a process can only ever prove something to itself: whatever its PAM
//! answer, it holds no right its user does not already have. su, sudo,
//! pkexec, sshd and login run with effective uid 0 and never come here.

use crate::events::{Level, Record};

/// The `unprivileged=` module argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// `PAM_AUTH_ERR`: fail closed, as everywhere else, unless the admin
    /// (or the pam-auth-update profile) asks for `ignore`.
    #[default]
    Deny,
    /// `PAM_IGNORE` for the caller's own account: the rest of the stack
    /// (the password) decides, e.g. to unlock a session that was opened with
    /// the second factor.
    Ignore,
}

impl Mode {
    pub fn parse(value: &str) -> Option<Mode> {
        match value {
            "deny" => Some(Mode::Deny),
            "ignore" => Some(Mode::Ignore),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Deny => "deny",
            Mode::Ignore => "ignore",
        }
    }
}

/// The process's real, effective and saved user ids (getresuid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    pub real: u32,
    pub effective: u32,
    pub saved: u32,
}

impl Ids {
    pub fn current() -> Ids {
        let (mut real, mut effective, mut saved) = (0, 0, 0);
        // getresuid cannot fail with valid pointers; if it ever did, the
        // effective uid alone still decides and the rest stays 0 (never ignore).
        if unsafe { libc::getresuid(&mut real, &mut effective, &mut saved) } != 0 {
            return Ids {
                real: 0,
                effective: unsafe { libc::geteuid() },
                saved: 0,
            };
        }
        Ids {
            real,
            effective,
            saved,
        }
    }
}

/// Why an unprivileged login is denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// `unprivileged=deny` (the default).
    Configured,
    /// The real or saved uid is not the effective one: a setuid program, or
    /// one that lowered its effective uid for a while (it can become root
    /// again and act on the answer), must run PAM as root.
    MixedIds,
    /// The account is not the caller's own (pam_sss or pam_ldap would
    /// check another user's password for anyone).
    OtherAccount,
    /// The user lookup failed or found nobody.
    NoAccount,
}

impl Reason {
    /// The `reason=` value (docs/errors.md lists them).
    fn text(self) -> &'static str {
        match self {
            Reason::Configured => "deny_configured",
            Reason::MixedIds => "mixed_uids",
            Reason::OtherAccount => "not_own_account",
            Reason::NoAccount => "no_account",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Effective uid 0: the normal login, with the config.
    Privileged,
    /// `PAM_IGNORE`.
    Ignore,
    /// `PAM_AUTH_ERR`.
    Deny(Reason),
}

/// Decides on the effective uid at authentication time, as unix_chkpwd
/// does. `account_uid` is the uid of the account being authenticated
/// (`None` if it could not be looked up); it is only asked for when needed.
pub fn decide(mode: Mode, ids: Ids, account_uid: impl FnOnce() -> Option<u32>) -> Decision {
    if ids.effective == 0 {
        return Decision::Privileged;
    }
    if mode == Mode::Deny {
        return Decision::Deny(Reason::Configured);
    }
    if ids.real != ids.effective || ids.saved != ids.effective {
        return Decision::Deny(Reason::MixedIds);
    }
    match account_uid() {
        None => Decision::Deny(Reason::NoAccount),
        Some(uid) if uid != ids.effective => Decision::Deny(Reason::OtherAccount),
        Some(_) => Decision::Ignore,
    }
}

/// The one log line for an unprivileged login (syslog, authpriv): never a
/// silent failure.
pub fn record(decision: Decision, ids: Ids, user: &str, service: &str) -> Option<Record> {
    let (level, event, reason) = match decision {
        Decision::Privileged => return None,
        Decision::Ignore => (Level::Info, "unprivileged_ignored", None),
        Decision::Deny(r) => (Level::Warning, "unprivileged_denied", Some(r)),
    };
    let mut r = Record::event(event)
        .at(level)
        .with("user", user)
        .with("service", service)
        .with("uid", ids.effective.to_string());
    if let Some(reason) = reason {
        r = r.with("reason", reason.text());
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: Ids = Ids {
        real: 1000,
        effective: 1000,
        saved: 1000,
    };

    #[test]
    fn effective_uid_0_is_the_normal_login_whatever_the_mode_and_real_uid() {
        for mode in [Mode::Deny, Mode::Ignore] {
            for real in [0, 1000] {
                let ids = Ids {
                    real,
                    effective: 0,
                    saved: 0,
                };
                let asked = std::cell::Cell::new(false);
                let d = decide(mode, ids, || {
                    asked.set(true);
                    Some(1000)
                });
                assert_eq!(d, Decision::Privileged);
                assert!(!asked.get(), "no lookup is needed as root");
            }
        }
    }

    #[test]
    fn the_default_is_deny() {
        assert_eq!(Mode::default(), Mode::Deny);
        assert_eq!(
            decide(Mode::default(), USER, || Some(1000)),
            Decision::Deny(Reason::Configured)
        );
    }

    #[test]
    fn ignore_is_only_for_the_callers_own_account() {
        assert_eq!(decide(Mode::Ignore, USER, || Some(1000)), Decision::Ignore);
        assert_eq!(
            decide(Mode::Ignore, USER, || Some(1001)),
            Decision::Deny(Reason::OtherAccount)
        );
        assert_eq!(
            decide(Mode::Ignore, USER, || Some(0)),
            Decision::Deny(Reason::OtherAccount)
        );
        assert_eq!(
            decide(Mode::Ignore, USER, || None),
            Decision::Deny(Reason::NoAccount)
        );
    }

    #[test]
    fn a_process_that_can_become_root_again_is_never_ignored() {
        // A setuid-root program that lowered its effective uid for a while
        // (saved uid 0), or whose real uid is root: it could act as root on
        // the answer, so it must run PAM as root.
        for ids in [
            Ids {
                real: 1000,
                effective: 1000,
                saved: 0,
            },
            Ids {
                real: 0,
                effective: 1000,
                saved: 1000,
            },
            Ids {
                real: 1001,
                effective: 1000,
                saved: 1000,
            },
        ] {
            assert_eq!(
                decide(Mode::Ignore, ids, || Some(1000)),
                Decision::Deny(Reason::MixedIds),
                "{ids:?}"
            );
        }
    }

    #[test]
    fn mode_names_round_trip_and_nothing_else_parses() {
        for m in [Mode::Deny, Mode::Ignore] {
            assert_eq!(Mode::parse(m.name()), Some(m));
        }
        for bad in ["", "Ignore", "allow", "permit", "ignore ", "yes"] {
            assert_eq!(Mode::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn every_decision_but_the_normal_one_logs_one_line_with_service_and_uid() {
        assert!(record(Decision::Privileged, USER, "alice", "sshd").is_none());
        let r = record(Decision::Ignore, USER, "alice", "swaylock").unwrap();
        assert_eq!(r.get("event"), Some("unprivileged_ignored"));
        assert_eq!(r.get("service"), Some("swaylock"));
        assert_eq!(r.get("uid"), Some("1000"));
        let r = record(Decision::Deny(Reason::Configured), USER, "alice", "i3lock").unwrap();
        assert_eq!(r.get("event"), Some("unprivileged_denied"));
        assert_eq!(r.get("reason"), Some("deny_configured"));
        assert_eq!(r.level, Level::Warning);
    }
}
