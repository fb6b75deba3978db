//! The login flow: lockout and remembered origins, find the number, choose a
//! method, send (or reuse a code another login sent), check.
//!
//! Plain Rust over the small interfaces in `Env`; it never sees a C type, so
//! every branch is unit-tested with fakes and again through the real libpam.
//!
//! Limits hold per user across logins: each check's attempt is reserved in
//! the state store under the user's lock before Twilio is asked, so logins
//! running at once can never use more than `max_attempts` checks together.
//!
//! One file per step a login takes, each an `impl Flow` block:
//! `exemption` (groups, trusted networks, remembered origins), `number` (the
//! number on file), `enrol` (register or change a number), `send` (choose a
//! method, send or reuse a code), `verify` (the code prompt and its limits).
//! `login` is who logs in from where; `msg` the texts the user sees.

mod enrol;
mod exemption;
mod login;
mod number;
mod send;
mod verify;

pub use login::Login;
pub use verify::normalise_code;

use crate::clock::Clock;
use crate::config::Config;
use crate::conversation::{ConvError, Conversation};
use crate::events::{EventSink, Level, Record};
use crate::i18n::{Answer, Msg};
use crate::method::Method;
use crate::number_policy::LineTypeLookup;
use crate::phone_book::PhoneBook;
use crate::state::{StateError, StateStore, UserState};
use crate::users::{Account, UserDb};
use crate::verify::VerifyApi;
use send::reusable;

#[cfg(test)]
mod tests;

/// What the login came to; the PAM shell maps each to a PAM return code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Denied: wrong input, no number, Twilio refused for the user's reasons.
    AuthErr,
    /// The attempt limit was used up, or the user is locked out.
    MaxTries,
    /// Twilio could not be reached or answered unusably.
    AuthInfoUnavail,
    /// Our own setup is broken (config, credentials, service SID, sources, state).
    ServiceErr,
    /// The user skipped optional registration: the rest of the stack decides.
    Ignore,
    UserUnknown,
    ConvErr,
}

/// Everything the flow talks to.
pub struct Env<'a> {
    pub conv: &'a mut dyn Conversation,
    pub api: &'a dyn VerifyApi,
    pub phones: &'a dyn PhoneBook,
    /// Twilio Lookup, for numbers being registered or changed.
    pub lookup: &'a dyn LineTypeLookup,
    pub users: &'a dyn UserDb,
    pub events: &'a dyn EventSink,
    pub clock: &'a dyn Clock,
    pub state: &'a dyn StateStore,
}

/// How many unusable answers (malformed codes, early resends, codes for an
/// expired verification) one conversation tolerates: a scripted client must
/// not keep the module busy forever.
pub const MAX_INVALID_ENTRIES: u32 = 10;

/// How many times the method menu is asked before giving up.
pub const MENU_ASKS: u32 = 3;

/// Runs one second-factor login.
///
/// The name as typed only finds the account: a directory that ignores case
/// takes `ALICE` for alice, so from here on every key (number sources, state,
/// `{user}`, events) is the account's own name, `pw_name`.
pub fn authenticate(cfg: &Config, login: &Login, env: &mut Env) -> Outcome {
    let account = match identify(cfg, login, env) {
        Ok(a) => a,
        Err(outcome) => return outcome,
    };
    // `[[policy]]`: the flow runs on the settings for this account.
    let cfg = &match with_policy(cfg, &account, env) {
        Ok(cfg) => cfg,
        Err(outcome) => return outcome,
    };
    let canonical = Login {
        user: &account.name,
        ..login.clone()
    };
    let typed = (account.name != login.user).then_some(login.user);
    let mut flow = Flow::new(cfg, &canonical, typed, &account, env);
    let outcome = match flow.run() {
        Ok(outcome) | Err(outcome) => outcome,
    };
    // Every path maps this itself (`unreachable`); this is the backstop
    // that keeps the rule true for paths added later.
    let outcome = match (outcome, canonical.interfering_caller()) {
        (Outcome::AuthInfoUnavail, Some(uid)) => {
            flow.log(
                Record::message(
                    Level::Error,
                    format!("denying with PAM_AUTH_ERR, not PAM_AUTHINFO_UNAVAIL, because the calling user (uid {uid}) can stop or limit this process"),
                )
                .with("user", account.name.as_str()),
            );
            Outcome::AuthErr
        }
        _ => outcome,
    };
    flow.log(
        Record::message(Level::Debug, format!("result {outcome:?}"))
            .with("user", account.name.as_str())
            .with("service", login.service),
    );
    outcome
}

/// The config with the account's `[[policy]]` block applied. A block that
/// cannot be decided denies the login (see `policy::matching_block`).
fn with_policy<'c>(
    cfg: &'c Config,
    account: &Account,
    env: &mut Env,
) -> Result<std::borrow::Cow<'c, Config>, Outcome> {
    match crate::policy::effective(cfg, account, env.users) {
        Ok((cfg, block)) => {
            if let Some(i) = block {
                env.events.record(
                    Record::message(Level::Debug, format!("policy[{}] applies", i + 1))
                        .with("user", account.name.as_str()),
                );
            }
            Ok(cfg)
        }
        Err(e) => {
            env.events.record(
                Record::message(
                    Level::Error,
                    format!("cannot decide which [[policy]] applies: {e}; denying the login; check the group database or the policy's group names"),
                )
                .with("user", account.name.as_str()),
            );
            let _ = env.conv.error(&cfg.texts().text(Msg::Unavailable));
            Err(Outcome::AuthErr)
        }
    }
}

/// Longest user name accepted (typed or canonical).
const MAX_USER_LEN: usize = 256;

/// The account the typed name stands for. A failed lookup denies the login
/// (never "unknown user", never "unavailable": both can be let through by a
/// stack), with a line for the admin.
fn identify(cfg: &Config, login: &Login, env: &mut Env) -> Result<Account, Outcome> {
    let typed = login.user;
    let found = if typed.is_empty() || typed.len() > MAX_USER_LEN {
        Ok(None)
    } else {
        env.users.lookup(typed)
    };
    let found = found.and_then(|a| match a {
        Some(a) if a.name.len() > MAX_USER_LEN => Err(format!(
            "the account's name is longer than {MAX_USER_LEN} bytes"
        )),
        a => Ok(a),
    });
    match found {
        Ok(Some(account)) => Ok(account),
        Ok(None) => {
            env.events.record(
                Record::event("user_unknown")
                    .with("user", typed)
                    .at(Level::Warning),
            );
            Err(Outcome::UserUnknown)
        }
        Err(e) => {
            env.events.record(
                Record::message(
                    Level::Error,
                    format!("cannot look up the user: {e}; denying the login; check the user database (nsswitch.conf, sssd, LDAP)"),
                )
                .with("typed_user", typed),
            );
            let _ = env.conv.error(&cfg.texts().text(Msg::Unavailable));
            Err(Outcome::AuthErr)
        }
    }
}

struct Flow<'a, 'b> {
    cfg: &'a Config,
    /// `login.user` is the account's own name.
    login: &'a Login<'a>,
    /// The name as the client typed it, when it differs: logged beside `user`.
    typed: Option<&'a str>,
    account: &'a Account,
    env: &'a mut Env<'b>,
    /// Methods Twilio said cannot reach the number (60205, 60223).
    unavailable: Vec<Method>,
    /// The number the `[phones] directory` held when the login began (none
    /// for a registration): a new number is stored only if it still does.
    directory_number: Option<String>,
    /// False while the login goes on to register or change a number: only
    /// a finished login is remembered.
    remember_success: bool,
    /// `c` is accepted at the code prompt: the number may be changed.
    change_offered: bool,
    /// The user typed `c`: after the right code, ask for the new number.
    change_asked: bool,
}

/// `Err` carries the outcome to return at once.
type Step<T> = Result<T, Outcome>;

impl From<ConvError> for Outcome {
    fn from(_: ConvError) -> Outcome {
        Outcome::ConvErr
    }
}

impl<'a, 'b> Flow<'a, 'b> {
    fn new(
        cfg: &'a Config,
        login: &'a Login<'a>,
        typed: Option<&'a str>,
        account: &'a Account,
        env: &'a mut Env<'b>,
    ) -> Self {
        Flow {
            cfg,
            login,
            typed,
            account,
            env,
            unavailable: Vec::new(),
            directory_number: None,
            remember_success: true,
            change_offered: false,
            change_asked: false,
        }
    }

    fn run(&mut self) -> Step<Outcome> {
        let user = self.login.user;
        if let Some(reason) = self.exemption() {
            self.log(
                Record::event("verification_skipped")
                    .with("user", user)
                    .with("reason", reason)
                    .with("service", self.login.service)
                    .with("rhost", self.login.rhost.unwrap_or("-")),
            );
            return Ok(Outcome::Ignore);
        }
        // Before anything is sent: a locked-out user costs no SMS.
        let st = self.state_update(&mut |_| {})?;
        let now = self.env.clock.now();
        if let Some(left) = st.lockout_left(now) {
            self.log(
                Record::event("verification_failed")
                    .with("user", user)
                    .with("reason", "locked_out")
                    .with("rhost", self.login.rhost.unwrap_or("-")),
            );
            self.say_locked_out(left)?;
            return Ok(Outcome::MaxTries);
        }
        if let Some(origin) = self.login.origin() {
            if st.is_remembered(&origin, now, self.cfg.remember) {
                return self.skip_remembered(&origin);
            }
        }
        let found = self.find_number()?;
        self.directory_number = found
            .as_ref()
            .filter(|f| f.source == "directory")
            .map(|f| f.number.clone());
        let Some(found) = found else {
            return self.register();
        };
        let phone = self.stored_number(&found, &st)?;
        let changeable = self.cfg.allow_change && found.changeable && self.env.phones.can_store();
        // Sent at once: a change of number is offered at the code prompt
        // (`c`), where the code typed proves the current number.
        let method = match reusable(&st, &phone, now, self.cfg.retry_time) {
            Some(p) => p.method,
            None => self.choose_method()?,
        };
        let (mut pending, reused) = self.send_locked(&phone, method, None)?;
        self.change_offered = changeable;
        let outcome = self.verify_loop(&phone, &mut pending, reused)?;
        self.change_offered = false;
        if self.change_asked && outcome == Outcome::Success {
            // The method that proved the current number proves the new one.
            return self.enrol(Some(pending.method), Some(&phone));
        }
        Ok(outcome)
    }

    /// Runs `f` on the user's state under their lock; returns the state after.
    /// A state problem ends the login, closed.
    fn state_update(&mut self, f: &mut dyn FnMut(&mut UserState)) -> Step<UserState> {
        let mut after = UserState::default();
        let result = self.env.state.update(self.login.user, &mut |st| {
            f(st);
            after = st.clone();
        });
        match result {
            Ok(()) => Ok(after),
            Err(StateError::Busy) => {
                // Never AUTHINFO_UNAVAIL: a stack with authinfo_unavail=ignore
                // would let anyone who can hold the lock skip the factor.
                self.log(
                    Record::message(
                        Level::Warning,
                        "state file busy: another login holds the lock",
                    )
                    .with("user", self.login.user),
                );
                self.say(Msg::Busy)?;
                Err(Outcome::AuthErr)
            }
            Err(e @ StateError::Corrupt(_)) => {
                self.admin_error(format!(
                    "{e}; inspect it, then run `twilio-2fa unlock {}`",
                    self.login.user
                ));
                self.say_damaged_state()?;
                Err(Outcome::ServiceErr)
            }
            Err(e) => {
                self.admin_error(format!("{e}; fix state_dir (root-owned, mode 0700)"));
                self.say(Msg::SetupError)?;
                Err(Outcome::ServiceErr)
            }
        }
    }

    fn status_changed(&mut self, sid: &str, status: &str) {
        self.log(
            Record::event("verification_status_changed")
                .with("user", self.login.user)
                .with("sid", sid.to_string())
                .with("status", status),
        );
    }

    /// Twilio gave no usable answer to a send or a check. That is an outage
    /// (PAM_AUTHINFO_UNAVAIL, which a stack may choose to admit) only when
    /// the caller cannot have caused it: a caller who may signal this process
    /// can stop it past `http_timeout`, or lower its limits, at will.
    fn unreachable(&mut self, action: &str, why: &str) -> Outcome {
        let url = &self.cfg.verify_url;
        // A TLS failure's text already says what to check.
        let hint = if why.starts_with("TLS to ") {
            String::new()
        } else {
            format!("; check the network path to {url}")
        };
        match self.login.interfering_caller() {
            None => {
                self.admin_error(format!("cannot {action} a code: {why}{hint}"));
                Outcome::AuthInfoUnavail
            }
            Some(uid) => {
                self.admin_error(format!(
                    "Twilio unreachable: cannot {action} a code: {why}; denying with PAM_AUTH_ERR, not PAM_AUTHINFO_UNAVAIL, because the calling user (uid {uid}) can stop or limit this process; if this keeps happening, check the network path to {url}"
                ));
                Outcome::AuthErr
            }
        }
    }

    fn log(&self, r: Record) {
        let r = match self.typed {
            Some(t) if r.get("user").is_some() => r.with("typed_user", t),
            _ => r,
        };
        self.env.events.record(r);
    }

    fn admin_error(&self, text: String) {
        self.log(Record::message(Level::Error, text).with("user", self.login.user));
    }

    /// The login's text for `msg`, with the answer keys it names filled in.
    fn text(&self, msg: Msg) -> String {
        let t = self.cfg.texts();
        match msg {
            Msg::Expired => t.fmt(msg, &[("key", &t.key(Answer::NewCode))]),
            _ => t.text(msg),
        }
    }

    fn say(&mut self, msg: Msg) -> Result<(), ConvError> {
        let text = self.text(msg);
        self.error(&text)
    }

    fn say_locked_out(&mut self, seconds_left: u64) -> Result<(), ConvError> {
        let minutes = seconds_left.div_ceil(60).max(1);
        let text = self.cfg.texts().count(Msg::LockedOut, "minutes", minutes);
        self.error(&text)
    }

    fn say_damaged_state(&mut self) -> Result<(), ConvError> {
        let user = self.login.user;
        let text = self.cfg.texts().fmt(Msg::DamagedState, &[("user", user)]);
        self.error(&text)
    }

    fn error(&mut self, text: &str) -> Result<(), ConvError> {
        self.env.conv.error(text)
    }
}
