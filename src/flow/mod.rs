//! The login flow: lockout and remembered origins, find the number, choose a
//! method, send (or reuse a code another login sent), check.
//!
//! Plain Rust over the small interfaces in `Env`; it never sees a C type, so
//! every branch is unit-tested with fakes and again through the real libpam.
//!
//! Limits hold per user across logins: each check's attempt is reserved in
//! the state store under the user's lock before Twilio is asked, so logins
//! running at once can never use more than `max_attempts` checks together.

use crate::clock::Clock;
use crate::config::{wipe, Config};
use crate::conversation::{ConvError, Conversation};
use crate::events::{EventSink, Level, Record};
use crate::method::Method;
use crate::number_policy::{
    check_country, check_new_number, check_number, LineTypeLookup, Rejection,
};
use crate::phone::PhoneNumber;
use crate::phone_book::{Found, PhoneBook};
use crate::state::{PendingSend, StateError, StateStore, UserState};
use crate::users::{Account, UserDb};
use crate::verify::{codes, ApiError, CheckResult, VerifyApi};

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

/// Who is logging in, from where, through which PAM service.
#[derive(Debug, Clone)]
pub struct Login<'a> {
    pub user: &'a str,
    pub rhost: Option<&'a str>,
    pub tty: Option<&'a str>,
    pub service: &'a str,
    /// This machine's short host name, for the `{host}` placeholder.
    pub hostname: &'a str,
    /// The real uid of the process (the caller under su, sudo, pkexec).
    pub caller_uid: u32,
    /// The caller's terminal session (`session::current`): opaque, `None`
    /// when it cannot be told.
    pub session: Option<String>,
}

impl Login<'_> {
    /// The caller's uid when it is not root (su, sudo, pkexec's helper run
    /// with the caller's real uid): that user may stop (SIGSTOP) or limit
    /// (rlimits) this process, so a request that times out or fails may be
    /// their doing, never an outage. `None` under sshd, login and the like.
    pub fn interfering_caller(&self) -> Option<u32> {
        (self.caller_uid != 0).then_some(self.caller_uid)
    }

    /// Where and by whom the second factor was proven, for `remember`:
    /// always bound to the PAM service and the caller's real uid (root for
    /// sshd; the user for a local program that sets PAM_RHOST, such as sudo
    /// with pam_rhost); a remote login to the remote host; a local one to
    /// the terminal and its session (a terminal name alone is reused by the
    /// next user). `None` (nothing remembered, nothing matches) when a part
    /// is missing or the origin would be longer than the state file keeps.
    pub fn origin(&self) -> Option<String> {
        let svc = escape(self.service);
        let origin = match (self.rhost, self.tty, &self.session) {
            (Some(h), _, _) if !h.is_empty() => {
                format!("svc={svc} uid={} rhost={}", self.caller_uid, escape(h))
            }
            (_, Some(t), Some(session)) if !t.is_empty() && !session.is_empty() => format!(
                "svc={svc} uid={} tty={} session={}",
                self.caller_uid,
                escape(t),
                escape(session)
            ),
            _ => return None,
        };
        (origin.len() <= crate::state::MAX_ORIGIN_LEN).then_some(origin)
    }
}

/// Every byte outside a small safe set as %XX: the parts of an origin can
/// hold neither its separators nor anything that would drive a terminal
/// when `twilio-2fa status` shows it.
fn escape(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for b in part.bytes() {
        if b.is_ascii_alphanumeric() || b"._:/@+-".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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

/// Texts the user sees; tests assert on them.
pub mod msg {
    pub const NO_PHONE: &str =
        "No phone number is registered for two-factor authentication. Contact your administrator.";
    pub const BAD_PHONE: &str =
        "The phone number on file for two-factor authentication is not valid. Contact your administrator.";
    pub const UNAVAILABLE: &str = "Two-factor authentication is unavailable right now.";
    pub const SETUP_ERROR: &str =
        "Two-factor authentication is not set up correctly on this system. Contact your administrator.";
    pub const BAD_FORMAT: &str = "The code must be 4 to 10 digits.";
    pub const WRONG_CODE: &str = "That code was not correct.";
    pub const TOO_MANY_WRONG: &str = "Too many incorrect codes. Log in again to get a new code.";
    pub const TOO_MANY_INVALID: &str = "Too many invalid entries.";
    pub const EXPIRED: &str = "That code has expired. Type r to get a new code.";
    pub const SEND_LIMIT: &str = "Too many codes were sent to this number; try again later.";
    pub const RATE_LIMITED: &str = "Too many requests, try again shortly.";
    pub const SEND_FAILED: &str =
        "The code could not be sent. Contact your administrator if this keeps happening.";
    pub const CHECK_FAILED: &str =
        "The code could not be checked. Contact your administrator if this keeps happening.";
    pub const BLOCKED: &str = "Codes cannot be sent to this number. Contact your administrator.";
    pub const NO_METHOD_REACHES: &str =
        "None of the allowed ways of sending a code can reach this number. Contact your administrator.";
    pub const BUSY: &str = "Another login for this account is in progress; try again in a moment.";
    pub const NUMBER_CHANGED: &str = "Your phone number was changed by an administrator while you were logging in. Log in again.";

    pub fn locked_out(seconds_left: u64) -> String {
        let minutes = seconds_left.div_ceil(60).max(1);
        let unit = if minutes == 1 { "minute" } else { "minutes" };
        format!("Too many failed attempts. Try again in {minutes} {unit}.")
    }

    pub fn damaged_state(user: &str) -> String {
        format!(
            "Two-factor authentication data for this account is damaged; ask an administrator to run `twilio-2fa unlock {user}`."
        )
    }
}

/// How many unusable answers (malformed codes, early resends, codes for an
/// expired verification) one conversation tolerates: a scripted client must
/// not keep the module busy forever.
pub const MAX_INVALID_ENTRIES: u32 = 10;
const MENU_HEADER: &str = "Choose how to receive your code:";

/// How many times the method menu is asked before giving up.
pub const MENU_ASKS: u32 = 3;

/// Runs one second-factor login.
///
/// The name as typed only finds the account: a directory that ignores case
/// takes `ALICE` for alice, so from here on every key (number sources, state,
/// `{user}`, events) is the account's own name, `pw_name`.
pub fn authenticate(cfg: &Config, login: &Login, env: &mut Env) -> Outcome {
    let account = match identify(login, env) {
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
            let _ = env.conv.error(msg::UNAVAILABLE);
            Err(Outcome::AuthErr)
        }
    }
}

/// Longest user name accepted (typed or canonical).
const MAX_USER_LEN: usize = 256;

/// The account the typed name stands for. A failed lookup denies the login
/// (never "unknown user", never "unavailable": both can be let through by a
/// stack), with a line for the admin.
fn identify(login: &Login, env: &mut Env) -> Result<Account, Outcome> {
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
            let _ = env.conv.error(msg::UNAVAILABLE);
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

/// What happened under the lock in `send_locked`.
enum SendResult {
    NotRun,
    Ready(PendingSend, bool),
    Locked(u64),
    Failed(ApiError),
    /// A resend asked for within `retry_time` of the user's last send.
    Wait(u64),
}

/// A resend: the verification it replaces, and whether Twilio may still
/// accept a code for it (false once Twilio said it is gone).
#[derive(Clone, Copy)]
struct Resend<'s> {
    old: &'s str,
    live: bool,
}

/// What a resend came to.
enum Resent {
    /// A code to type: newly sent, or (`true`) one another login sent.
    Code(PendingSend, bool),
    /// Too early: seconds until a new code may be sent.
    Wait(u64),
}

/// Why a check could not be started.
enum NoCheck {
    Locked(u64),
    NoAttemptsLeft,
}

/// A code sent earlier, by this login or another, that is still worth typing.
fn reusable(st: &UserState, phone: &PhoneNumber, now: u64, retry_time: u64) -> Option<PendingSend> {
    st.pending
        .clone()
        .filter(|p| p.to == phone.e164() && now < p.sent_at + retry_time)
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
            self.error(&msg::locked_out(left))?;
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

    fn find_number(&mut self) -> Step<Option<Found>> {
        match self.env.phones.find(self.login.user) {
            Ok(found) => Ok(found),
            Err(e) => {
                self.admin_error(format!(
                    "cannot read phone numbers: {e}; fix the [phones] source"
                ));
                self.error(msg::SETUP_ERROR)?;
                Err(Outcome::ServiceErr)
            }
        }
    }

    /// No number on file: register one if allowed, else deny.
    fn register(&mut self) -> Step<Outcome> {
        let user = self.login.user;
        if !(self.cfg.allow_register && self.env.phones.can_store()) {
            self.log(
                Record::event("verification_failed")
                    .with("user", user)
                    .with("reason", "no_phone_number"),
            );
            self.error(msg::NO_PHONE)?;
            return Ok(Outcome::AuthErr);
        }
        self.enrol(None, None)
    }

    /// Asks for a new number, verifies it like a login, and only then stores
    /// it. `old`: the number being replaced (already verified in this login),
    /// whose method is used again; without one the user picks a method.
    fn enrol(&mut self, method: Option<Method>, old: Option<&PhoneNumber>) -> Step<Outcome> {
        let optional = old.is_none() && self.cfg.register_optional;
        let Some(new) = self.ask_new_number(optional, old)? else {
            self.log(
                Record::event("registration_skipped")
                    .with("user", self.login.user)
                    .with("service", self.login.service),
            );
            return Ok(Outcome::Ignore);
        };
        let method = match method {
            Some(m) => m,
            None => self.choose_method()?,
        };
        self.remember_success = false;
        let (mut pending, reused) = self.send_locked(&new, method, None)?;
        let outcome = self.verify_loop(&new, &mut pending, reused)?;
        if outcome != Outcome::Success {
            return Ok(outcome);
        }
        let dropped = self.store_number(&new)?;
        let (reason, r) = match old {
            None => ("registered", Record::event("registered")),
            Some(o) => (
                "phone_changed",
                Record::event("phone_changed").with("old", o.masked_e164()),
            ),
        };
        self.log(
            r.with("user", self.login.user)
                .with("to", new.masked_e164())
                .with("service", self.login.service),
        );
        if dropped > 0 {
            self.log(
                Record::event("remembered_ended")
                    .with("user", self.login.user)
                    .with("count", dropped.to_string())
                    .with("reason", reason),
            );
        }
        Ok(Outcome::Success)
    }

    /// Stores a verified new number under the user's state lock (which
    /// `twilio-2fa user set/remove` take too), unless the directory's number
    /// changed since the login began: then the administrator's (or another
    /// login's) number stays. A new number ends every remembered login.
    /// Returns how many remembered logins were ended.
    fn store_number(&mut self, new: &PhoneNumber) -> Step<usize> {
        enum Stored {
            Done(usize),
            Changed,
            Failed(crate::phone_book::SourceError),
        }
        let (phones, user) = (self.env.phones, self.login.user);
        let expected = self.directory_number.clone();
        let mut stored = Stored::Changed;
        self.state_update(&mut |st| {
            stored = match phones.stored(user) {
                Ok(now) if now != expected => Stored::Changed,
                Ok(_) => match phones.store(user, new.e164()) {
                    Ok(()) => Stored::Done(st.forget_remembered()),
                    Err(e) => Stored::Failed(e),
                },
                Err(e) => Stored::Failed(e),
            };
        })?;
        match stored {
            Stored::Done(dropped) => Ok(dropped),
            Stored::Changed => {
                self.log(
                    Record::event("verification_failed")
                        .with("user", user)
                        .with("reason", "number_changed_during_login")
                        .with("service", self.login.service)
                        .at(Level::Warning),
                );
                self.error(msg::NUMBER_CHANGED)?;
                Err(Outcome::AuthErr)
            }
            Stored::Failed(e) => {
                self.admin_error(format!("verified a new number but cannot store it: {e}"));
                self.error(msg::SETUP_ERROR)?;
                Err(Outcome::ServiceErr)
            }
        }
    }

    /// `Ok(None)`: the user typed `skip` (only when `optional`).
    fn ask_new_number(
        &mut self,
        optional: bool,
        old: Option<&PhoneNumber>,
    ) -> Step<Option<PhoneNumber>> {
        let prompt = match (old, optional) {
            (Some(_), _) => "Enter your new mobile phone number: ",
            (None, true) => {
                "Enter your mobile phone number for two-factor authentication (or type skip): "
            }
            (None, false) => "Enter your mobile phone number for two-factor authentication: ",
        };
        for ask in 1..=MENU_ASKS {
            let answer = self.env.conv.prompt_echo_on(prompt)?;
            let answer = answer.trim();
            if optional && answer.eq_ignore_ascii_case("skip") {
                return Ok(None);
            }
            let text = match check_new_number(answer, self.cfg, self.env.lookup, true) {
                Ok(n) if old.is_some_and(|o| o.e164() == n.e164()) => {
                    "That is the number already on file.".to_string()
                }
                Ok(n) => return Ok(Some(n)),
                Err(r @ Rejection::LookupUnavailable(_)) => {
                    if let Rejection::LookupUnavailable(why) = &r {
                        self.admin_error(format!("carrier lookup failed: {why}"));
                    }
                    // Fail closed: no unchecked number is ever stored.
                    self.error(&r.message())?;
                    return Err(Outcome::AuthErr);
                }
                Err(r) => r.message(),
            };
            if ask < MENU_ASKS {
                self.error(&text)?;
            } else {
                self.error(&format!("{text} {}", msg::TOO_MANY_INVALID))?;
            }
        }
        self.log(
            Record::event("verification_failed")
                .with("user", self.login.user)
                .with("reason", "no_valid_number_entered"),
        );
        Err(Outcome::AuthErr)
    }

    /// A number from a source must still pass the country policy.
    fn stored_number(&mut self, found: &Found, st: &UserState) -> Step<PhoneNumber> {
        let region = &self.cfg.default_region;
        let cached = st
            .number
            .as_ref()
            .and_then(|p| PhoneNumber::from_parsed(p, &found.number, region));
        let checked = match cached {
            // The policy is checked every time; only the parse is cached.
            Some(n) => check_country(n, self.cfg),
            None => {
                let checked = check_number(&found.number, self.cfg);
                if let Ok(n) = &checked {
                    let parsed = n.to_parsed(&found.number, region);
                    self.state_update(&mut |st| st.number = Some(parsed.clone()))?;
                }
                checked
            }
        };
        match checked {
            Ok(n) => Ok(n),
            Err(r) => {
                self.log(
                    Record::message(
                        Level::Error,
                        format!(
                            "the number on file for this user (from the {} source) is refused: {}",
                            found.source,
                            r.message()
                        ),
                    )
                    .with("user", self.login.user),
                );
                let text = match r {
                    Rejection::Country(_) => format!("{} Contact your administrator.", r.message()),
                    _ => msg::BAD_PHONE.to_string(),
                };
                self.error(&text)?;
                Err(Outcome::AuthErr)
            }
        }
    }

    fn menu_lines(&self, header: &str, methods: &[Method]) -> String {
        let mut menu = format!("{header}\n");
        for (i, m) in methods.iter().enumerate() {
            menu.push_str(&format!("  {}. {}\n", i + 1, self.cfg.label(*m)));
        }
        menu
    }

    /// Why this user need not use the second factor here, if they need not:
    /// `only_groups`, `exempt_groups`, `trusted_networks`.
    fn exemption(&self) -> Option<String> {
        let cfg = self.cfg;
        if !cfg.only_groups.is_empty() || !cfg.exempt_groups.is_empty() {
            match self.group_exemption() {
                Ok(Some(reason)) => return Some(reason),
                Ok(None) => {}
                // Groups cannot excuse a user we could not place.
                Err(e) => self.log(
                    Record::message(
                        Level::Warning,
                        format!("group lookup failed: {e}; the user must verify"),
                    )
                    .with("user", self.login.user),
                ),
            }
        }
        let rhost = self.login.rhost?;
        crate::net::trusted(rhost, &cfg.trusted_networks).map(|n| format!("trusted_network:{n}"))
    }

    /// `only_groups` and `exempt_groups`, compared by group id. Every group
    /// named there must resolve and the user's list must be read: with one
    /// unknown, the user might be in it, so any failure is an `Err`.
    fn group_exemption(&self) -> Result<Option<String>, String> {
        let (cfg, users) = (self.cfg, self.env.users);
        let mine = users
            .group_ids(self.account)
            .map_err(|e| format!("the user's groups: {e}"))?;
        let member_of = |names: &[String]| -> Result<Option<String>, String> {
            let mut hit = None;
            for name in names {
                let gid = users
                    .group_id(name)
                    .map_err(|e| format!("group {name}: {e}"))?
                    .ok_or_else(|| format!("group {name}: no such group"))?;
                if hit.is_none() && mine.contains(&gid) {
                    hit = Some(name.clone());
                }
            }
            Ok(hit)
        };
        if !cfg.only_groups.is_empty() && member_of(&cfg.only_groups)?.is_none() {
            return Ok(Some("not_in_only_groups".into()));
        }
        Ok(member_of(&cfg.exempt_groups)?.map(|g| format!("exempt_group:{g}")))
    }

    fn skip_remembered(&mut self, origin: &str) -> Step<Outcome> {
        self.log(
            Record::event("verification_skipped")
                .with("user", self.login.user)
                .with("reason", "remembered")
                .with("origin", origin.to_string())
                .with("service", self.login.service),
        );
        let minutes = self.cfg.remember.div_ceil(60);
        let unit = if minutes == 1 { "minute" } else { "minutes" };
        self.env.conv.info(&format!(
            "Two-factor authentication skipped: you passed it from here within the last {minutes} {unit}."
        ))?;
        Ok(Outcome::Success)
    }

    fn choose_method(&mut self) -> Step<Method> {
        self.choose_method_for(MENU_HEADER)
    }

    fn choose_method_for(&mut self, header: &str) -> Step<Method> {
        let methods = self.available_methods();
        if methods.len() == 1 {
            return Ok(methods[0]);
        }
        let menu = format!(
            "{}Enter 1-{}: ",
            self.menu_lines(header, &methods),
            methods.len()
        );
        for ask in 1..=MENU_ASKS {
            let answer = self.env.conv.prompt_echo_on(&menu)?;
            if let Some(m) = parse_menu_answer(&answer, &methods, self.cfg) {
                return Ok(m);
            }
            if ask < MENU_ASKS {
                self.error(&format!(
                    "Please enter a number from 1 to {} or a method name.",
                    methods.len()
                ))?;
            }
        }
        self.log(
            Record::event("verification_failed")
                .with("user", self.login.user)
                .with("reason", "no_method_chosen"),
        );
        self.error(msg::TOO_MANY_INVALID)?;
        Err(Outcome::AuthErr)
    }

    /// Under the user's lock: reuse a code another login sent within
    /// `retry_time` to the same number, or send one (and, with `replace`,
    /// cancel the one it replaces). Holding the lock across the send is what
    /// stops 20 logins at once from sending 20 codes; checking the lockout
    /// again under it stops a login that started before a lockout from
    /// sending after it.
    fn send_locked(
        &mut self,
        phone: &PhoneNumber,
        method: Method,
        replace: Option<&str>,
    ) -> Step<(PendingSend, bool)> {
        // Without a resend's cooldown there is nothing to wait for.
        let resend = replace.map(|old| Resend { old, live: false });
        match self.send_under_lock(phone, method, resend, false)? {
            Resent::Code(p, reused) => Ok((p, reused)),
            Resent::Wait(_) => {
                self.admin_error("a send without a cooldown was told to wait".into());
                Err(Outcome::ServiceErr)
            }
        }
    }

    /// The user typed `r`. `retry_time` runs from the user's last send,
    /// whichever login made it, and is decided under the user's lock, so
    /// logins at once cannot each send a code: a newer code another login
    /// sent is taken over instead of sending one more.
    fn resend_locked(
        &mut self,
        phone: &PhoneNumber,
        method: Method,
        resend: Resend,
    ) -> Step<Resent> {
        self.send_under_lock(phone, method, Some(resend), true)
    }

    /// The core of `send_locked` and `resend_locked`; `cooldown`: apply
    /// `retry_time` to a resend.
    fn send_under_lock(
        &mut self,
        phone: &PhoneNumber,
        method: Method,
        resend: Option<Resend>,
        cooldown: bool,
    ) -> Step<Resent> {
        let replace = resend.map(|r| r.old);
        let (api, clock) = (self.env.api, self.env.clock);
        let (retry_time, friendly) = (self.cfg.retry_time, self.friendly_name(method));
        let mut result = SendResult::NotRun;
        let mut canceled = None;
        self.state_update(&mut |st| {
            let now = clock.now();
            if let Some(left) = st.lockout_left(now) {
                result = SendResult::Locked(left);
                return;
            }
            match (resend, reusable(st, phone, now, retry_time)) {
                (None, Some(p)) => {
                    result = SendResult::Ready(p, true);
                    return;
                }
                // Another login sent a newer code within retry_time: use it.
                (Some(r), Some(p)) if cooldown && p.sid != r.old => {
                    result = SendResult::Ready(p, true);
                    return;
                }
                _ => {}
            }
            // A verification Twilio already called gone may be replaced at
            // once; a live one only `retry_time` after the user's last send.
            if cooldown && resend.is_some_and(|r| r.live) {
                // Old state files have no last_sent_at: the pending send's time.
                let last = st.last_sent_at.or(st.pending.as_ref().map(|p| p.sent_at));
                let wait = last.map_or(0, |t| (t + retry_time).saturating_sub(now));
                if wait > 0 {
                    result = SendResult::Wait(wait);
                    return;
                }
            }
            if let Some(old) = replace {
                canceled = Some(api.cancel(old).map(|_| old.to_string()));
            }
            result = match api.send(phone.e164(), method, friendly.as_deref()) {
                Ok(v) => {
                    let p = PendingSend {
                        sid: v.sid,
                        method,
                        to: phone.e164().to_string(),
                        sent_at: now,
                    };
                    st.pending = Some(p.clone());
                    st.last_sent_at = Some(now);
                    SendResult::Ready(p, false)
                }
                Err(e) => {
                    st.pending = None;
                    SendResult::Failed(e)
                }
            };
        })?;
        if let Some(Ok(sid)) = canceled {
            self.status_changed(&sid, "canceled");
        }
        match result {
            SendResult::Ready(p, reused) => {
                if !reused {
                    self.log(
                        Record::event("verification_sent")
                            .with("user", self.login.user)
                            .with("method", p.method.name())
                            .with("to", phone.masked_e164())
                            .with("sid", p.sid.clone())
                            .with("service", self.login.service)
                            .with("rhost", self.login.rhost.unwrap_or("-")),
                    );
                }
                Ok(Resent::Code(p, reused))
            }
            SendResult::Wait(left) => Ok(Resent::Wait(left)),
            SendResult::Locked(left) => {
                self.error(&msg::locked_out(left))?;
                Err(Outcome::MaxTries)
            }
            SendResult::Failed(e)
                if matches!(
                    e.twilio_code(),
                    Some(codes::LANDLINE_NO_SMS | codes::CHANNEL_DISABLED)
                ) =>
            {
                self.method_unavailable(&e, phone, method, replace)
                    .map(|(p, reused)| Resent::Code(p, reused))
            }
            SendResult::Failed(e) => Err(self.send_failure(&e, method)),
            SendResult::NotRun => {
                self.admin_error("state store returned without running the update".into());
                Err(Outcome::ServiceErr)
            }
        }
    }

    /// Twilio cannot use `method` for this number (60205 landline, 60223
    /// channel disabled): offer the other allowed methods, if any.
    fn method_unavailable(
        &mut self,
        e: &ApiError,
        phone: &PhoneNumber,
        method: Method,
        replace: Option<&str>,
    ) -> Step<(PendingSend, bool)> {
        self.log(
            Record::message(
                Level::Warning,
                format!("{} cannot be used: {e}", method.name()),
            )
            .with("user", self.login.user)
            .with("to", phone.masked_e164()),
        );
        self.unavailable.push(method);
        if self.available_methods().is_empty() {
            self.error(msg::NO_METHOD_REACHES)?;
            return Err(Outcome::AuthErr);
        }
        let label = self.cfg.label(method).to_string();
        self.error(&format!(
            "A code cannot be sent to this number by {label}; choose another way."
        ))?;
        let next = self.choose_method()?;
        self.send_locked(phone, next, replace)
    }

    /// The allowed methods, less those Twilio said cannot reach this number.
    fn available_methods(&self) -> Vec<Method> {
        self.cfg
            .allowed_methods
            .iter()
            .copied()
            .filter(|m| !self.unavailable.contains(m))
            .collect()
    }

    /// One line naming every answer the code prompt accepts besides a code
    /// (sshd shows it as one line).
    fn prompt_for(&self, phone: &PhoneNumber, p: &PendingSend, reused: bool) -> String {
        let lead = if reused {
            "A code was already sent"
        } else {
            "Code sent"
        };
        let mut choices = vec!["r: new code"];
        if self.other_method_offered() {
            choices.push("m: other method");
        }
        if self.change_offered && !self.change_asked {
            choices.push("c: change number");
        }
        format!(
            "{lead} by {} to {}. Enter code ({}): ",
            self.cfg.label(p.method),
            phone.display(self.cfg.obfuscate),
            choices.join(", ")
        )
    }

    /// `m` at the code prompt: only when another method could be chosen.
    fn other_method_offered(&self) -> bool {
        self.available_methods().len() > 1
    }

    fn verify_loop(
        &mut self,
        phone: &PhoneNumber,
        pending: &mut PendingSend,
        reused: bool,
    ) -> Step<Outcome> {
        let mut reused = reused;
        let mut invalid = 0u32;
        // False once Twilio has said the verification is gone (expired, finished).
        let mut live = true;
        loop {
            let prompt = self.prompt_for(phone, pending, reused);
            let mut typed = self.env.conv.prompt_echo_off(&prompt)?;
            let answer = typed.trim().to_string();
            wipe(&mut typed);
            // Compared in place: no unwiped copy of a typed code is made.
            let is = |w: &str| answer.eq_ignore_ascii_case(w);
            if self.change_offered && (is("c") || is("change")) {
                self.change_asked = true;
                // A login that goes on to change the number is not remembered.
                self.remember_success = false;
                self.env
                    .conv
                    .info("After the right code, you will be asked for your new number.")?;
                continue;
            }
            let other = self.other_method_offered() && (is("m") || is("method"));
            if other || is("r") || is("resend") {
                // `m`: a new send by the chosen method, under a resend's rules.
                let method = if other {
                    self.choose_method()?
                } else {
                    pending.method
                };
                let old = pending.sid.clone();
                let resend = Resend { old: &old, live };
                match self.resend_locked(phone, method, resend)? {
                    Resent::Wait(wait) => {
                        let unit = if wait == 1 { "second" } else { "seconds" };
                        let text = format!("You can request a new code in {wait} {unit}.");
                        self.invalid_entry(&mut invalid, &text)?;
                    }
                    Resent::Code(p, again) => {
                        *pending = p;
                        reused = again;
                        live = true;
                    }
                }
                continue;
            }
            let code = normalise_code(&answer);
            let mut answer = answer;
            wipe(&mut answer);
            let Some(mut code) = code else {
                self.invalid_entry(&mut invalid, msg::BAD_FORMAT)?;
                continue;
            };
            if !live {
                self.invalid_entry(&mut invalid, msg::EXPIRED)?;
                continue;
            }
            let attempt = match self.reserve_attempt()? {
                Ok(n) => n,
                Err(NoCheck::Locked(left)) => {
                    self.error(&msg::locked_out(left))?;
                    return Ok(Outcome::MaxTries);
                }
                Err(NoCheck::NoAttemptsLeft) => {
                    self.error(msg::TOO_MANY_WRONG)?;
                    return Ok(Outcome::MaxTries);
                }
            };
            let checked = self.env.api.check(&pending.sid, &code);
            wipe(&mut code);
            match checked {
                Ok(CheckResult::Approved) => return self.succeeded(pending),
                Ok(CheckResult::Rejected) => {
                    self.log(
                        Record::event("verification_failed")
                            .with("user", self.login.user)
                            .with("reason", "wrong_code")
                            .with("attempt", format!("{attempt}/{}", self.cfg.max_attempts))
                            .with("sid", pending.sid.clone())
                            .with("rhost", self.login.rhost.unwrap_or("-")),
                    );
                    if attempt >= self.cfg.max_attempts {
                        return self.attempts_used_up(&pending.sid);
                    }
                    self.error(msg::WRONG_CODE)?;
                }
                Err(e) if e.twilio_code() == Some(codes::MAX_CHECK_ATTEMPTS) => {
                    return self.attempts_used_up(&pending.sid);
                }
                Err(e) if e.twilio_code() == Some(codes::NOT_FOUND) => {
                    live = false;
                    let sid = pending.sid.clone();
                    self.state_update(&mut |st| {
                        if st.pending.as_ref().is_some_and(|p| p.sid == sid) {
                            st.pending = None;
                        }
                    })?;
                    self.log(
                        Record::event("verification_expired")
                            .with("user", self.login.user)
                            .with("sid", pending.sid.clone()),
                    );
                    self.error(msg::EXPIRED)?;
                }
                Err(e) => return Err(self.check_failure(&e)),
            }
        }
    }

    /// Takes one attempt from the user's allowance before a check is made.
    fn reserve_attempt(&mut self) -> Step<Result<u32, NoCheck>> {
        let (clock, max) = (self.env.clock, self.cfg.max_attempts);
        let mut out = Err(NoCheck::NoAttemptsLeft);
        self.state_update(&mut |st| {
            let now = clock.now();
            out = if let Some(left) = st.lockout_left(now) {
                Err(NoCheck::Locked(left))
            } else if st.attempts >= max {
                Err(NoCheck::NoAttemptsLeft)
            } else {
                st.attempts += 1;
                Ok(st.attempts)
            };
        })?;
        Ok(out)
    }

    fn succeeded(&mut self, pending: &PendingSend) -> Step<Outcome> {
        let (clock, remember) = (self.env.clock, self.cfg.remember);
        let origin = self.login.origin().filter(|_| self.remember_success);
        let sid = pending.sid.clone();
        self.state_update(&mut |st| {
            let now = clock.now();
            st.attempts = 0;
            st.locked_until = None;
            if st.pending.as_ref().is_some_and(|p| p.sid == sid) {
                st.pending = None;
            }
            st.prune_remembered(now, remember);
            if let (Some(o), true) = (&origin, remember > 0) {
                st.remember(o, now);
            }
        })?;
        self.log(
            Record::event("verification_success")
                .with("user", self.login.user)
                .with("method", pending.method.name())
                .with("sid", pending.sid.clone())
                .with("service", self.login.service)
                .with("rhost", self.login.rhost.unwrap_or("-")),
        );
        self.status_changed(&pending.sid, "approved");
        Ok(Outcome::Success)
    }

    /// The limit is reached: lock the user out (or, with a zero timeout,
    /// start the count again) and cancel the verification.
    fn attempts_used_up(&mut self, sid: &str) -> Step<Outcome> {
        let (clock, timeout) = (self.env.clock, self.cfg.max_attempts_timeout);
        let mut until = None;
        self.state_update(&mut |st| {
            let now = clock.now();
            st.attempts = 0;
            if timeout > 0 {
                let end = st.locked_until.unwrap_or(0).max(now + timeout);
                st.locked_until = Some(end);
                until = Some(end);
            }
            if st.pending.as_ref().is_some_and(|p| p.sid == sid) {
                st.pending = None;
            }
        })?;
        self.cancel(sid);
        let mut r = Record::event("verification_failed")
            .with("user", self.login.user)
            .with("reason", "max_attempts")
            .with("rhost", self.login.rhost.unwrap_or("-"))
            .at(Level::Warning);
        if let Some(end) = until {
            r = r.with("locked_until", crate::clock::iso_time(end));
        }
        self.log(r);
        match until {
            Some(end) => self.error(&msg::locked_out(end.saturating_sub(self.env.clock.now())))?,
            None => self.error(msg::TOO_MANY_WRONG)?,
        }
        Ok(Outcome::MaxTries)
    }

    /// Counts an unusable answer; past the limit the login ends.
    fn invalid_entry(&mut self, invalid: &mut u32, text: &str) -> Step<()> {
        *invalid += 1;
        if *invalid >= MAX_INVALID_ENTRIES {
            self.log(
                Record::event("verification_failed")
                    .with("user", self.login.user)
                    .with("reason", "too_many_invalid_entries"),
            );
            self.error(msg::TOO_MANY_INVALID)?;
            return Err(Outcome::AuthErr);
        }
        self.error(text)?;
        Ok(())
    }

    /// Best effort: a verification we no longer want should not stay usable.
    fn cancel(&mut self, sid: &str) {
        match self.env.api.cancel(sid) {
            Ok(()) => self.status_changed(sid, "canceled"),
            Err(e) => self.log(
                Record::message(Level::Debug, format!("could not cancel verification: {e}"))
                    .with("sid", sid.to_string()),
            ),
        }
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
                self.error(msg::BUSY)?;
                Err(Outcome::AuthErr)
            }
            Err(e @ StateError::Corrupt(_)) => {
                self.admin_error(format!(
                    "{e}; inspect it, then run `twilio-2fa unlock {}`",
                    self.login.user
                ));
                self.error(&msg::damaged_state(self.login.user))?;
                Err(Outcome::ServiceErr)
            }
            Err(e) => {
                self.admin_error(format!("{e}; fix state_dir (root-owned, mode 0700)"));
                self.error(msg::SETUP_ERROR)?;
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

    fn send_failure(&mut self, e: &ApiError, method: Method) -> Outcome {
        let code = e.twilio_code();
        let (outcome, text) = match (e, code) {
            (ApiError::Unavailable(why), _) => (self.unreachable("send", why), msg::UNAVAILABLE),
            (_, Some(codes::BAD_CREDENTIALS)) => {
                self.admin_error("Twilio rejected the credentials (error 20003); check account_sid and auth_token, or api_key_sid and api_key_secret".into());
                (Outcome::ServiceErr, msg::SETUP_ERROR)
            }
            (_, Some(codes::NOT_FOUND)) => {
                self.admin_error(format!(
                    "Twilio has no Verify service {} (error 20404); check service_sid",
                    self.cfg.service_sid
                ));
                (Outcome::ServiceErr, msg::SETUP_ERROR)
            }
            (_, Some(codes::MAX_SEND_ATTEMPTS)) => (Outcome::AuthErr, msg::SEND_LIMIT),
            (_, Some(codes::TOO_MANY_REQUESTS | codes::TOO_MANY_CONCURRENT)) => {
                (Outcome::AuthErr, msg::RATE_LIMITED)
            }
            (_, Some(codes::FRAUD_BLOCKED)) => {
                self.log(
                    Record::message(
                        Level::Warning,
                        "Twilio blocked sending to this number as suspected fraud (error 60410)",
                    )
                    .with("user", self.login.user),
                );
                (Outcome::AuthErr, msg::BLOCKED)
            }
            _ => {
                self.log(
                    Record::message(Level::Error, format!("Twilio refused to send a code: {e}"))
                        .with("user", self.login.user)
                        .with("method", method.name()),
                );
                (Outcome::AuthErr, msg::SEND_FAILED)
            }
        };
        self.log(
            Record::event("verification_failed")
                .with("user", self.login.user)
                .with("reason", "send_failed")
                .with(
                    "twilio_code",
                    code.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                ),
        );
        let _ = self.error(text);
        outcome
    }

    fn check_failure(&mut self, e: &ApiError) -> Outcome {
        let (outcome, text) = match (e, e.twilio_code()) {
            (ApiError::Unavailable(why), _) => (self.unreachable("check", why), msg::UNAVAILABLE),
            (_, Some(codes::BAD_CREDENTIALS)) => {
                self.admin_error("Twilio rejected the credentials (error 20003); check account_sid and auth_token, or api_key_sid and api_key_secret".into());
                (Outcome::ServiceErr, msg::SETUP_ERROR)
            }
            (_, Some(codes::TOO_MANY_REQUESTS | codes::TOO_MANY_CONCURRENT)) => {
                (Outcome::AuthErr, msg::RATE_LIMITED)
            }
            _ => {
                self.log(
                    Record::message(Level::Error, format!("Twilio refused to check a code: {e}"))
                        .with("user", self.login.user),
                );
                (Outcome::AuthErr, msg::CHECK_FAILED)
            }
        };
        let _ = self.error(text);
        outcome
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

    /// `service_name` with its placeholders filled in, cut to Twilio's 30 characters.
    fn friendly_name(&self, method: Method) -> Option<String> {
        let template = self.cfg.service_name.as_ref()?;
        let filled = template
            .replace("{user}", self.login.user)
            .replace("{host}", self.login.hostname)
            .replace("{service}", self.login.service)
            .replace("{method}", method.name());
        // The user name comes from the network and ends up in a text message.
        let clean: String = filled
            .chars()
            .filter(|c| !c.is_control())
            .take(30)
            .collect();
        let clean = clean.trim().to_string();
        (!clean.is_empty()).then_some(clean)
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

    fn error(&mut self, text: &str) -> Result<(), ConvError> {
        self.env.conv.error(text)
    }
}

/// Menu answers: the number, the method name, or its label.
fn parse_menu_answer(answer: &str, methods: &[Method], cfg: &Config) -> Option<Method> {
    let a = answer.trim().to_lowercase();
    if let Ok(i) = a.parse::<usize>() {
        return (1..=methods.len()).contains(&i).then(|| methods[i - 1]);
    }
    methods
        .iter()
        .copied()
        .find(|m| m.name() == a || cfg.label(*m).to_lowercase() == a)
}

/// Strips spaces and dashes; a code is 4 to 10 ASCII digits.
pub fn normalise_code(answer: &str) -> Option<String> {
    if answer.len() > 64 {
        return None;
    }
    let code: String = answer.chars().filter(|c| *c != ' ' && *c != '-').collect();
    let ok = (4..=10).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit());
    ok.then_some(code)
}
