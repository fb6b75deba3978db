//! Every branch of the flow, with in-memory fakes.

use super::*;
use crate::events::MemoryLog;
use crate::number_policy::LineInfo;
use crate::phone_book::{Found, SourceError};
use crate::state::{MemoryStore, StateError};
use crate::verify::{ApiError, CheckResult, SendOptions, Verification};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

/// The English texts as users read them, written out here so that a change
/// to the catalog's wording fails a test.
mod msg {
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
    pub const EXPIRED: &str = "That code has expired. Type r to get a new code.";
    pub const SEND_LIMIT: &str = "Too many codes were sent to this number; try again later.";
    pub const RATE_LIMITED: &str = "Too many requests, try again shortly.";
    pub const SEND_FAILED: &str =
        "The code could not be sent. Contact your administrator if this keeps happening.";
    pub const BLOCKED: &str = "Codes cannot be sent to this number. Contact your administrator.";
    pub const NO_METHOD_REACHES: &str =
        "None of the allowed ways of sending a code can reach this number. Contact your administrator.";
    pub const BUSY: &str = "Another login for this account is in progress; try again in a moment.";
    pub const NUMBER_CHANGED: &str =
        "Your phone number was changed by an administrator while you were logging in. Log in again.";

    pub fn damaged_state(user: &str) -> String {
        format!(
            "Two-factor authentication data for this account is damaged; ask an administrator to run `twilio-2fa unlock {user}`."
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Shown {
    EchoOn(String),
    EchoOff(String),
    Error(String),
    Info(String),
}

/// Answers prompts from a script; `None` in the script is a hung-up client.
#[derive(Default)]
struct ScriptedConv {
    answers: VecDeque<Option<String>>,
    shown: Vec<Shown>,
}

impl ScriptedConv {
    fn new(answers: &[&str]) -> Self {
        ScriptedConv {
            answers: answers.iter().map(|a| Some(a.to_string())).collect(),
            shown: vec![],
        }
    }
    fn next(&mut self) -> Result<String, ConvError> {
        self.answers
            .pop_front()
            .flatten()
            .ok_or_else(|| ConvError("no answer".into()))
    }
    fn errors(&self) -> Vec<String> {
        self.shown
            .iter()
            .filter_map(|s| match s {
                Shown::Error(t) => Some(t.clone()),
                _ => None,
            })
            .collect()
    }
    fn prompts(&self) -> Vec<String> {
        self.shown
            .iter()
            .filter_map(|s| match s {
                Shown::EchoOff(t) | Shown::EchoOn(t) => Some(t.clone()),
                _ => None,
            })
            .collect()
    }
}

impl Conversation for ScriptedConv {
    fn prompt_echo_on(&mut self, p: &str) -> Result<String, ConvError> {
        self.shown.push(Shown::EchoOn(p.into()));
        self.next()
    }
    fn prompt_echo_off(&mut self, p: &str) -> Result<String, ConvError> {
        self.shown.push(Shown::EchoOff(p.into()));
        self.next()
    }
    fn error(&mut self, t: &str) -> Result<(), ConvError> {
        self.shown.push(Shown::Error(t.into()));
        Ok(())
    }
    fn info(&mut self, t: &str) -> Result<(), ConvError> {
        self.shown.push(Shown::Info(t.into()));
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    Send(String, Method, Option<String>),
    Check(String, String),
    Cancel(String),
}

/// A Verify stand-in: the right code is "123456"; errors can be queued.
#[derive(Default)]
struct FakeApi {
    calls: RefCell<Vec<Call>>,
    send_errors: RefCell<VecDeque<ApiError>>,
    check_errors: RefCell<VecDeque<ApiError>>,
    sends: Cell<u32>,
    /// The `Locale` of each send.
    locales: RefCell<Vec<Option<String>>>,
    /// The `RateLimits` of each send.
    rate_limits: RefCell<Vec<Vec<(String, String)>>>,
    /// What Lookup says; None means "mobile".
    line_info: RefCell<Option<Result<LineInfo, ApiError>>>,
    lookups: Cell<u32>,
}

impl LineTypeLookup for FakeApi {
    fn line_info(&self, _: &str) -> Result<LineInfo, ApiError> {
        self.lookups.set(self.lookups.get() + 1);
        self.line_info.borrow().clone().unwrap_or(Ok(LineInfo {
            valid: true,
            line_type: Some("mobile".into()),
        }))
    }
}

impl FakeApi {
    fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }
    fn checks(&self) -> usize {
        self.calls()
            .iter()
            .filter(|c| matches!(c, Call::Check(..)))
            .count()
    }
}

impl VerifyApi for FakeApi {
    fn send(&self, to: &str, m: Method, opts: &SendOptions) -> Result<Verification, ApiError> {
        self.locales
            .borrow_mut()
            .push(opts.locale.map(String::from));
        self.rate_limits
            .borrow_mut()
            .push(opts.rate_limits.to_vec());
        self.calls.borrow_mut().push(Call::Send(
            to.into(),
            m,
            opts.friendly_name.map(String::from),
        ));
        if let Some(e) = self.send_errors.borrow_mut().pop_front() {
            return Err(e);
        }
        self.sends.set(self.sends.get() + 1);
        Ok(Verification {
            sid: format!("VE{:032}", self.sends.get()),
            status: "pending".into(),
        })
    }
    fn check(&self, sid: &str, code: &str) -> Result<CheckResult, ApiError> {
        self.calls
            .borrow_mut()
            .push(Call::Check(sid.into(), code.into()));
        if let Some(e) = self.check_errors.borrow_mut().pop_front() {
            return Err(e);
        }
        Ok(if code == "123456" {
            CheckResult::Approved
        } else {
            CheckResult::Rejected
        })
    }
    fn cancel(&self, sid: &str) -> Result<(), ApiError> {
        self.calls.borrow_mut().push(Call::Cancel(sid.into()));
        Ok(())
    }
}

/// A phone book with one user's entry (alice's); `store` replaces it.
struct FakePhones {
    found: RefCell<Result<Option<String>, SourceError>>,
    changeable: bool,
    can_store: bool,
    stored: RefCell<Vec<String>>,
    /// Every user name the flow asked for or stored under.
    keys: RefCell<Vec<String>>,
    /// What an administrator put in the directory after the login began.
    directory_now: RefCell<Option<Option<String>>>,
}

impl FakePhones {
    /// A read-only source (no change offered, no registration).
    fn new(r: Result<Option<String>, SourceError>) -> Self {
        FakePhones {
            found: RefCell::new(r),
            changeable: false,
            can_store: false,
            stored: RefCell::new(vec![]),
            keys: RefCell::new(vec![]),
            directory_now: RefCell::new(None),
        }
    }

    /// A `[phones] directory`: changeable and writable.
    fn directory(number: Option<&str>) -> Self {
        FakePhones {
            changeable: true,
            can_store: true,
            ..FakePhones::new(Ok(number.map(String::from)))
        }
    }
}

impl PhoneBook for FakePhones {
    fn find(&self, user: &str) -> Result<Option<Found>, SourceError> {
        self.keys.borrow_mut().push(user.to_string());
        let found = self.found.borrow().clone()?.filter(|_| user == "alice");
        Ok(found.map(|number| Found {
            number,
            changeable: self.changeable,
            source: "directory",
        }))
    }
    fn can_store(&self) -> bool {
        self.can_store
    }
    fn store(&self, user: &str, e164: &str) -> Result<(), SourceError> {
        self.keys.borrow_mut().push(user.to_string());
        self.stored.borrow_mut().push(e164.to_string());
        *self.found.borrow_mut() = Ok(Some(e164.to_string()));
        Ok(())
    }
    fn stored(&self, _: &str) -> Result<Option<String>, SourceError> {
        if let Some(now) = self.directory_now.borrow().clone() {
            return Ok(now);
        }
        Ok(self.found.borrow().clone()?.filter(|_| self.changeable))
    }
}

/// A user database that ignores case, as sssd's AD provider does: any
/// capitalisation of "alice" is the account alice. Groups: alice (1000) and
/// staff (50); admins (60) exists without her.
#[derive(Default)]
struct FakeUsers {
    fault: Option<Fault>,
}

/// A lookup that fails (an NSS error, not "not found").
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    User,
    GroupList,
    Group(&'static str),
}

impl FakeUsers {
    fn failing(fault: Fault) -> Self {
        FakeUsers { fault: Some(fault) }
    }
}

impl UserDb for FakeUsers {
    fn lookup(&self, typed: &str) -> Result<Option<Account>, String> {
        if self.fault == Some(Fault::User) {
            return Err("getpwnam_r failed: Input/output error".into());
        }
        Ok(typed.eq_ignore_ascii_case("alice").then(|| Account {
            name: "alice".into(),
            uid: 1000,
            gid: 1000,
        }))
    }
    fn group_ids(&self, account: &Account) -> Result<Vec<u32>, String> {
        assert_eq!(account.name, "alice");
        if self.fault == Some(Fault::GroupList) {
            return Err("getgrouplist failed".into());
        }
        Ok(vec![1000, 50])
    }
    fn group_id(&self, name: &str) -> Result<Option<u32>, String> {
        if matches!(self.fault, Some(Fault::Group(g)) if g == name) {
            return Err("getgrnam_r failed: Input/output error".into());
        }
        Ok(match name {
            "alice" => Some(1000),
            "staff" => Some(50),
            "admins" => Some(60),
            _ => None,
        })
    }
}

struct FakeClock(Cell<u64>);
impl Clock for FakeClock {
    fn now(&self) -> u64 {
        self.0.get()
    }
}

/// Advances the fake clock each time the user is prompted, by a script.
struct TimedConv<'c> {
    inner: ScriptedConv,
    clock: &'c FakeClock,
    steps: VecDeque<u64>,
}

impl Conversation for TimedConv<'_> {
    fn prompt_echo_on(&mut self, p: &str) -> Result<String, ConvError> {
        self.inner.prompt_echo_on(p)
    }
    fn prompt_echo_off(&mut self, p: &str) -> Result<String, ConvError> {
        let step = self.steps.pop_front().unwrap_or(0);
        self.clock.0.set(self.clock.0.get() + step);
        self.inner.prompt_echo_off(p)
    }
    fn error(&mut self, t: &str) -> Result<(), ConvError> {
        self.inner.error(t)
    }
    fn info(&mut self, t: &str) -> Result<(), ConvError> {
        self.inner.info(t)
    }
}

fn config(extra: &str) -> Config {
    Config::parse(&format!(
        "account_sid = \"AC0123456789abcdef0123456789abcdef\"\nauth_token = \"tok\"\nservice_sid = \"VA0123456789abcdef0123456789abcdef\"\n{extra}"
    ))
    .unwrap()
}

const SMS_ONLY: &str = "allowed_methods = [\"sms\"]\n";
const ALICE_PHONE: &str = "+12015552671";
const PROMPT: &str = "Code sent by text message to (XXX) XXX-2671. Enter code (r: new code): ";

/// The records of one event, in order.
fn events_named(log: &MemoryLog, name: &str) -> Vec<Record> {
    log.0
        .borrow()
        .iter()
        .filter(|r| r.get("event") == Some(name))
        .cloned()
        .collect()
}

struct Run {
    outcome: Outcome,
    conv: ScriptedConv,
    api: FakeApi,
    log: MemoryLog,
}

impl Run {
    fn events(&self, name: &str) -> Vec<Record> {
        events_named(&self.log, name)
    }
}

fn run_with(
    cfg: &Config,
    user: &str,
    phone: Result<Option<String>, SourceError>,
    answers: &[&str],
    api: FakeApi,
) -> Run {
    let login = Login {
        user,
        rhost: Some("192.0.2.7"),
        tty: Some("ssh"),
        service: "sshd",
        hostname: "bastion",
        caller_uid: 0,
        session: None,
    };
    run_login(cfg, &login, phone, answers, api)
}

fn run_login(
    cfg: &Config,
    login: &Login,
    phone: Result<Option<String>, SourceError>,
    answers: &[&str],
    api: FakeApi,
) -> Run {
    let mut conv = ScriptedConv::new(answers);
    let log = MemoryLog::default();
    let phones = FakePhones::new(phone);
    let clock = FakeClock(Cell::new(1_000_000));
    let store = MemoryStore::default();
    let deps = Deps {
        api: &api,
        phones: &phones,
        store: &store,
        clock: &clock,
        log: &log,
    };
    let outcome = deps.drive(cfg, login, &mut conv);
    Run {
        outcome,
        conv,
        api,
        log,
    }
}

fn run(extra: &str, answers: &[&str]) -> Run {
    run_with(
        &config(extra),
        "alice",
        Ok(Some(ALICE_PHONE.into())),
        answers,
        FakeApi::default(),
    )
}

#[test]
fn right_code_succeeds_and_check_is_bound_to_the_sid() {
    let r = run(SMS_ONLY, &["123456"]);
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!(r.conv.prompts(), vec![PROMPT]);
    assert_eq!(
        r.api.calls(),
        vec![
            Call::Send(ALICE_PHONE.into(), Method::Sms, None),
            Call::Check(format!("VE{:032}", 1), "123456".into()),
        ]
    );
    assert_eq!(r.events("verification_sent").len(), 1);
    assert_eq!(r.events("verification_success").len(), 1);
    let sent = &r.events("verification_sent")[0];
    assert_eq!(sent.get("to"), Some("+1******2671"));
    assert_eq!(sent.get("rhost"), Some("192.0.2.7"));
    assert_eq!(sent.get("service"), Some("sshd"));
}

#[test]
fn no_log_line_holds_a_code_or_the_full_number() {
    let r = run(SMS_ONLY, &["111111", "123456"]);
    for rec in r.log.0.borrow().iter() {
        let line = rec.to_line();
        assert!(
            !line.contains("123456") && !line.contains("111111"),
            "{line}"
        );
        assert!(!line.contains("2015552671"), "{line}");
    }
}

#[test]
fn obfuscate_false_shows_national_format() {
    let r = run(&format!("{SMS_ONLY}obfuscate = false\n"), &["123456"]);
    assert_eq!(
        r.conv.prompts(),
        vec!["Code sent by text message to (201) 555-2671. Enter code (r: new code): "]
    );
}

#[test]
fn wrong_then_right() {
    let r = run(SMS_ONLY, &["000000", "123456"]);
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!(r.conv.errors(), vec![msg::WRONG_CODE]);
    assert_eq!(r.events("verification_failed").len(), 1);
}

#[test]
fn fifth_code_right_still_succeeds() {
    let r = run(
        SMS_ONLY,
        &["000001", "000002", "000003", "000004", "123456"],
    );
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!(r.api.checks(), 5);
}

#[test]
fn attempts_used_up_cancels_and_maxtries() {
    let r = run(
        SMS_ONLY,
        &["000001", "000002", "000003", "000004", "000005", "123456"],
    );
    assert_eq!(r.outcome, Outcome::MaxTries);
    assert_eq!(r.api.checks(), 5);
    assert_eq!(
        r.api.calls().last(),
        Some(&Call::Cancel(format!("VE{:032}", 1)))
    );
    assert_eq!(
        r.conv.errors().last().map(String::as_str),
        Some("Too many failed attempts. Try again in 10 minutes.")
    );
    assert_eq!(
        r.events("verification_status_changed")[0].get("status"),
        Some("canceled")
    );
}

#[test]
fn max_attempts_is_configurable() {
    let r = run(
        &format!("{SMS_ONLY}max_attempts = 2\n"),
        &["000001", "000002", "123456"],
    );
    assert_eq!(r.outcome, Outcome::MaxTries);
    assert_eq!(r.api.checks(), 2);
}

#[test]
fn twilio_60202_takes_the_max_tries_path() {
    let api = FakeApi::default();
    api.check_errors.borrow_mut().push_back(ApiError::Twilio {
        http_status: 429,
        code: 60202,
        message: "Max check attempts reached".into(),
    });
    let r = run_with(
        &config(SMS_ONLY),
        "alice",
        Ok(Some(ALICE_PHONE.into())),
        &["123456"],
        api,
    );
    assert_eq!(r.outcome, Outcome::MaxTries);
    assert!(matches!(r.api.calls().last(), Some(Call::Cancel(_))));
}

#[test]
fn malformed_codes_are_reasked_and_never_checked() {
    let r = run(
        SMS_ONLY,
        &["abc", "12", "12345678901", "12 34-56x", "", "12-34 56"],
    );
    assert_eq!(
        r.api.checks(),
        1,
        "only the last, well-formed answer is checked"
    );
    assert_eq!(
        r.conv
            .errors()
            .iter()
            .filter(|e| *e == msg::BAD_FORMAT)
            .count(),
        5
    );
    // "12-34 56" normalises to 123456, the right code.
    assert_eq!(r.outcome, Outcome::Success);
}

#[test]
fn endless_garbage_ends_the_login() {
    let answers: Vec<&str> = std::iter::repeat("x").take(50).collect();
    let r = run(SMS_ONLY, &answers);
    assert_eq!(r.outcome, Outcome::AuthErr);
    assert_eq!(r.api.checks(), 0);
    assert_eq!(r.conv.prompts().len() as u32, MAX_INVALID_ENTRIES);
}

#[test]
fn hung_up_client_is_conv_err() {
    let r = run(SMS_ONLY, &[]);
    assert_eq!(r.outcome, Outcome::ConvErr);
}

#[test]
fn unknown_user_sends_nothing() {
    let r = run_with(
        &config(SMS_ONLY),
        "mallory",
        Ok(Some(ALICE_PHONE.into())),
        &["123456"],
        FakeApi::default(),
    );
    assert_eq!(r.outcome, Outcome::UserUnknown);
    assert!(r.api.calls().is_empty());
    assert!(r.conv.shown.is_empty());
}

#[test]
fn no_number_is_auth_err_with_message() {
    let r = run_with(
        &config(SMS_ONLY),
        "alice",
        Ok(None),
        &["123456"],
        FakeApi::default(),
    );
    assert_eq!(r.outcome, Outcome::AuthErr);
    assert_eq!(r.conv.errors(), vec![msg::NO_PHONE]);
    assert!(r.api.calls().is_empty());
}

#[test]
fn unparsable_number_is_auth_err_nothing_sent() {
    let r = run_with(
        &config(SMS_ONLY),
        "alice",
        Ok(Some("not a number".into())),
        &[],
        FakeApi::default(),
    );
    assert_eq!(r.outcome, Outcome::AuthErr);
    assert_eq!(r.conv.errors(), vec![msg::BAD_PHONE]);
    assert!(r.api.calls().is_empty());
}

#[test]
fn unreadable_source_is_service_err() {
    let r = run_with(
        &config(SMS_ONLY),
        "alice",
        Err(SourceError("bad toml".into())),
        &[],
        FakeApi::default(),
    );
    assert_eq!(r.outcome, Outcome::ServiceErr);
    assert!(r.api.calls().is_empty());
}

#[test]
fn menu_accepts_number_name_or_label_and_reasks() {
    for (answers, want) in [
        (vec!["2", "123456"], Method::Call),
        (vec!["whatsapp", "123456"], Method::Whatsapp),
        (vec!["Text Message", "123456"], Method::Sms),
        (vec!["9", "email", "3", "123456"], Method::Whatsapp),
    ] {
        let r = run("", &answers);
        assert_eq!(r.outcome, Outcome::Success, "{answers:?}");
        assert!(
            matches!(&r.api.calls()[0], Call::Send(_, m, _) if *m == want),
            "{answers:?}"
        );
    }
    let r = run("", &["2", "123456"]);
    assert_eq!(
        r.conv.prompts()[0],
        "Choose how to receive your code:\n  1. text message\n  2. voice call\n  3. WhatsApp\nEnter 1-3: "
    );
    assert_eq!(
        r.conv.prompts()[1],
        "Code sent by voice call to (XXX) XXX-2671. Enter code (r: new code, m: other method): "
    );
}

#[test]
fn menu_gives_up_after_three_bad_answers() {
    let r = run("", &["x", "y", "z", "1"]);
    assert_eq!(r.outcome, Outcome::AuthErr);
    assert!(r.api.calls().is_empty());
    assert_eq!(r.conv.prompts().len(), 3);
}

#[test]
fn labels_come_from_config() {
    let r = run(
        "allowed_methods = [\"sms\", \"call\"]\n[methods.call]\nlabel = \"phone call\"\n",
        &["phone call", "123456"],
    );
    assert_eq!(r.outcome, Outcome::Success);
    assert!(r.conv.prompts()[0].contains("2. phone call"));
}

#[test]
fn friendly_name_is_filled_and_sanitised() {
    let cfg = config(&format!(
        "{SMS_ONLY}service_name = \"{{service}}@{{host}} {{user}}\"\n"
    ));
    let r = run_with(
        &cfg,
        "alice",
        Ok(Some(ALICE_PHONE.into())),
        &["123456"],
        FakeApi::default(),
    );
    assert!(matches!(&r.api.calls()[0], Call::Send(_, _, Some(f)) if f == "sshd@bastion alice"));
}

fn timed_run(extra: &str, answers: &[&str], steps: &[u64]) -> (Outcome, ScriptedConv, FakeApi) {
    let cfg = config(extra);
    let clock = FakeClock(Cell::new(1_000_000));
    let store = MemoryStore::default();
    let mut conv = TimedConv {
        inner: ScriptedConv::new(answers),
        clock: &clock,
        steps: steps.iter().copied().collect(),
    };
    let api = FakeApi::default();
    let log = MemoryLog::default();
    let phones = FakePhones::new(Ok(Some(ALICE_PHONE.into())));
    let login = Login {
        user: "alice",
        rhost: None,
        tty: Some("/dev/pts/1"),
        service: "sudo",
        hostname: "h",
        caller_uid: 1000,
        session: Some("boot/42/1234".into()),
    };
    let deps = Deps {
        api: &api,
        phones: &phones,
        store: &store,
        clock: &clock,
        log: &log,
    };
    let outcome = deps.drive(&cfg, &login, &mut conv);
    (outcome, conv.inner, api)
}

#[test]
fn early_resend_is_refused_with_seconds_left() {
    let (outcome, conv, api) = timed_run(SMS_ONLY, &["r", "123456"], &[30, 0]);
    assert_eq!(outcome, Outcome::Success);
    assert_eq!(
        conv.errors(),
        vec!["You can request a new code in 150 seconds."]
    );
    assert_eq!(
        api.calls()
            .iter()
            .filter(|c| matches!(c, Call::Send(..)))
            .count(),
        1
    );
}

#[test]
fn later_resend_cancels_old_and_sends_same_method() {
    let (outcome, _conv, api) = timed_run(
        &format!("{SMS_ONLY}retry_time = 60\n"),
        &["resend", "123456"],
        &[61, 0],
    );
    assert_eq!(outcome, Outcome::Success);
    let first = format!("VE{:032}", 1);
    let second = format!("VE{:032}", 2);
    assert_eq!(
        api.calls(),
        vec![
            Call::Send(ALICE_PHONE.into(), Method::Sms, None),
            Call::Cancel(first),
            Call::Send(ALICE_PHONE.into(), Method::Sms, None),
            Call::Check(second, "123456".into()),
        ]
    );
}

#[test]
fn expired_verification_says_so_and_allows_immediate_resend() {
    let api = FakeApi::default();
    api.check_errors.borrow_mut().push_back(ApiError::Twilio {
        http_status: 404,
        code: 20404,
        message: "not found".into(),
    });
    let r = run_with(
        &config(SMS_ONLY),
        "alice",
        Ok(Some(ALICE_PHONE.into())),
        &["111111", "222222", "r", "123456"],
        api,
    );
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!(r.conv.errors(), vec![msg::EXPIRED, msg::EXPIRED]);
    // The code typed after expiry is not sent to Twilio; the resend needs no wait.
    assert_eq!(r.api.checks(), 2);
    assert_eq!(
        r.api
            .calls()
            .iter()
            .filter(|c| matches!(c, Call::Send(..)))
            .count(),
        2
    );
}

fn failing_send(e: ApiError) -> Run {
    let api = FakeApi::default();
    // Twilio gives the same answer again (the retry without a Locale).
    api.send_errors.borrow_mut().extend([e.clone(), e]);
    run_with(
        &config(SMS_ONLY),
        "alice",
        Ok(Some(ALICE_PHONE.into())),
        &["123456"],
        api,
    )
}

fn twilio(code: u32, http_status: u16) -> ApiError {
    ApiError::Twilio {
        http_status,
        code,
        message: "m".into(),
    }
}

#[test]
fn send_failures_map_to_pam_outcomes() {
    let r = failing_send(ApiError::Unavailable("timed out".into()));
    assert_eq!(
        (r.outcome, r.conv.errors()),
        (Outcome::AuthInfoUnavail, vec![msg::UNAVAILABLE.to_string()])
    );
    let r = failing_send(twilio(20003, 401));
    assert_eq!(
        (r.outcome, r.conv.errors()),
        (Outcome::ServiceErr, vec![msg::SETUP_ERROR.to_string()])
    );
    let admin = r
        .log
        .0
        .borrow()
        .iter()
        .any(|x| x.level == Level::Error && x.get("msg").unwrap_or("").contains("20003"));
    assert!(admin, "bad credentials are logged at error level");
    assert_eq!(
        failing_send(twilio(20404, 404)).outcome,
        Outcome::ServiceErr
    );
    let r = failing_send(twilio(60203, 429));
    assert_eq!(
        (r.outcome, r.conv.errors()),
        (Outcome::AuthErr, vec![msg::SEND_LIMIT.to_string()])
    );
    assert_eq!(failing_send(twilio(60410, 403)).outcome, Outcome::AuthErr);
}

#[test]
fn check_failures_map_to_pam_outcomes() {
    for (e, want) in [
        (
            ApiError::Unavailable("500".into()),
            Outcome::AuthInfoUnavail,
        ),
        (twilio(20003, 401), Outcome::ServiceErr),
        (twilio(60200, 400), Outcome::AuthErr),
    ] {
        let api = FakeApi::default();
        api.check_errors.borrow_mut().push_back(e.clone());
        let r = run_with(
            &config(SMS_ONLY),
            "alice",
            Ok(Some(ALICE_PHONE.into())),
            &["123456"],
            api,
        );
        assert_eq!(r.outcome, want, "{e:?}");
    }
}

/// A login under su (real uid 1000): the caller can stop the process.
fn run_as_caller(api: FakeApi, answers: &[&str]) -> Run {
    let login = Login {
        user: "alice",
        rhost: None,
        tty: Some("/dev/pts/1"),
        service: "su",
        hostname: "h",
        caller_uid: 1000,
        session: None,
    };
    run_login(
        &config(SMS_ONLY),
        &login,
        Ok(Some(ALICE_PHONE.into())),
        answers,
        api,
    )
}

#[test]
fn a_caller_who_can_stop_the_process_never_gets_authinfo_unavail() {
    let unreachable = || ApiError::Unavailable("timed out".into());
    let api = FakeApi::default();
    api.send_errors.borrow_mut().push_back(unreachable());
    let send = run_as_caller(api, &["123456"]);
    let api = FakeApi::default();
    api.check_errors.borrow_mut().push_back(unreachable());
    let check = run_as_caller(api, &["000000"]);
    for (what, r) in [("send", send), ("check", check)] {
        assert_eq!(r.outcome, Outcome::AuthErr, "{what}");
        // The user is told the same as in an outage.
        assert_eq!(r.conv.errors(), vec![msg::UNAVAILABLE], "{what}");
        let why = r
            .log
            .0
            .borrow()
            .iter()
            .filter(|x| x.level == Level::Error)
            .filter_map(|x| x.get("msg").map(str::to_string))
            .find(|m| m.starts_with("Twilio unreachable:"))
            .unwrap_or_else(|| panic!("{what}: no admin line"));
        assert!(
            why.contains(&format!("cannot {what} a code: timed out"))
                && why.contains("denying with PAM_AUTH_ERR, not PAM_AUTHINFO_UNAVAIL, because the calling user (uid 1000) can stop or limit this process"),
            "{why}"
        );
    }
}

#[test]
fn twilio_answers_keep_their_outcomes_for_a_caller_who_can_stop_the_process() {
    // Only "no usable answer" changes; Twilio's own refusals map as before.
    let api = FakeApi::default();
    api.send_errors.borrow_mut().push_back(twilio(20003, 401));
    assert_eq!(run_as_caller(api, &["123456"]).outcome, Outcome::ServiceErr);
    assert_eq!(
        run_as_caller(FakeApi::default(), &["123456"]).outcome,
        Outcome::Success
    );
}

#[test]
fn code_normalisation() {
    assert_eq!(normalise_code("123 456").as_deref(), Some("123456"));
    assert_eq!(normalise_code("12-34").as_deref(), Some("1234"));
    assert_eq!(normalise_code("0123456789").as_deref(), Some("0123456789"));
    for bad in ["123", "01234567890", "12a456", "١٢٣٤٥٦", "12\t3456", ""] {
        assert_eq!(normalise_code(bad), None, "{bad:?}");
    }
}

/// What a login talks to, besides the conversation.
struct Deps<'a> {
    api: &'a FakeApi,
    phones: &'a dyn PhoneBook,
    store: &'a dyn StateStore,
    clock: &'a FakeClock,
    log: &'a MemoryLog,
}

impl Deps<'_> {
    fn drive(&self, cfg: &Config, login: &Login, conv: &mut dyn Conversation) -> Outcome {
        self.drive_as(&FakeUsers::default(), cfg, login, conv)
    }

    fn drive_as(
        &self,
        users: &dyn UserDb,
        cfg: &Config,
        login: &Login,
        conv: &mut dyn Conversation,
    ) -> Outcome {
        let mut env = Env {
            conv,
            api: self.api,
            phones: self.phones,
            lookup: self.api,
            users,
            events: self.log,
            clock: self.clock,
            state: self.store,
        };
        authenticate(cfg, login, &mut env)
    }
}

/// Several logins against one Twilio, one state store and one clock.
struct World {
    cfg: Config,
    phones: FakePhones,
    api: FakeApi,
    store: MemoryStore,
    clock: FakeClock,
    log: MemoryLog,
    users: FakeUsers,
}

impl World {
    fn new(extra: &str) -> World {
        World::with_phones(extra, FakePhones::new(Ok(Some(ALICE_PHONE.into()))))
    }

    fn with_phones(extra: &str, phones: FakePhones) -> World {
        World {
            cfg: config(extra),
            phones,
            api: FakeApi::default(),
            store: MemoryStore::default(),
            clock: FakeClock(Cell::new(1_000_000)),
            log: MemoryLog::default(),
            users: FakeUsers::default(),
        }
    }

    fn login_from(&self, rhost: &str, answers: &[&str]) -> (Outcome, ScriptedConv) {
        self.login_full("alice", rhost, answers)
    }

    /// A login as `user`, typed as the client typed it.
    fn login_as(&self, user: &str, answers: &[&str]) -> (Outcome, ScriptedConv) {
        self.login_full(user, "192.0.2.7", answers)
    }

    fn login_full(&self, user: &str, rhost: &str, answers: &[&str]) -> (Outcome, ScriptedConv) {
        let mut conv = ScriptedConv::new(answers);
        let login = Login {
            user,
            rhost: Some(rhost),
            tty: Some("ssh"),
            service: "sshd",
            hostname: "bastion",
            caller_uid: 0,
            session: None,
        };
        let deps = Deps {
            api: &self.api,
            phones: &self.phones,
            store: &self.store,
            clock: &self.clock,
            log: &self.log,
        };
        let outcome = deps.drive_as(&self.users, &self.cfg, &login, &mut conv);
        (outcome, conv)
    }

    fn login(&self, answers: &[&str]) -> (Outcome, ScriptedConv) {
        self.login_from("192.0.2.7", answers)
    }

    fn sends(&self) -> usize {
        self.api
            .calls()
            .iter()
            .filter(|c| matches!(c, Call::Send(..)))
            .count()
    }

    fn advance(&self, secs: u64) {
        self.clock.0.set(self.clock.0.get() + secs);
    }

    fn state(&self) -> crate::state::UserState {
        crate::state::read(&self.store, "alice").unwrap()
    }
}

#[test]
fn lockout_holds_across_logins_and_sends_nothing() {
    let w = World::new("allowed_methods = [\"sms\"]\nmax_attempts = 2\n");
    let (o, _) = w.login(&["000001", "000002"]);
    assert_eq!(o, Outcome::MaxTries);
    assert_eq!(w.state().locked_until, Some(1_000_000 + 600));
    let sends = w.sends();
    w.advance(1);
    let (o, conv) = w.login(&["123456"]);
    assert_eq!(o, Outcome::MaxTries);
    assert_eq!(
        conv.errors(),
        vec!["Too many failed attempts. Try again in 10 minutes."]
    );
    assert!(conv.prompts().is_empty());
    assert_eq!(w.sends(), sends, "no SMS while locked out");
    w.advance(540);
    let (_, conv) = w.login(&["123456"]);
    assert_eq!(
        conv.errors(),
        vec!["Too many failed attempts. Try again in 1 minute."]
    );
    w.advance(60);
    let (o, _) = w.login(&["123456"]);
    assert_eq!(o, Outcome::Success, "lockout over");
    let st = w.state();
    assert_eq!((st.attempts, st.locked_until, st.pending), (0, None, None));
}

#[test]
fn wrong_codes_add_up_across_logins_and_success_resets() {
    let w = World::new("allowed_methods = [\"sms\"]\nmax_attempts = 3\n");
    assert_eq!(w.login(&["000001"]).0, Outcome::ConvErr);
    assert_eq!(w.state().attempts, 1);
    assert_eq!(w.login(&["000002", "000003"]).0, Outcome::MaxTries);
    assert_eq!(w.api.checks(), 3);

    let w = World::new("allowed_methods = [\"sms\"]\nmax_attempts = 3\n");
    assert_eq!(w.login(&["000001", "000002", "123456"]).0, Outcome::Success);
    assert_eq!(w.state().attempts, 0);
    assert_eq!(w.login(&["000001", "000002", "123456"]).0, Outcome::Success);
}

#[test]
fn zero_lockout_timeout_just_resets_the_count() {
    let w = World::new("allowed_methods = [\"sms\"]\nmax_attempts = 2\nmax_attempts_timeout = 0\n");
    let (o, conv) = w.login(&["000001", "000002"]);
    assert_eq!(o, Outcome::MaxTries);
    assert_eq!(
        conv.errors().last().map(String::as_str),
        Some(msg::TOO_MANY_WRONG)
    );
    assert_eq!(w.state().locked_until, None);
    assert_eq!(w.state().attempts, 0);
    assert_eq!(w.login(&["123456"]).0, Outcome::Success);
}

#[test]
fn attempts_reserved_elsewhere_leave_no_check_here() {
    // Other logins have taken every attempt and are still waiting on Twilio.
    let w = World::new(SMS_ONLY);
    w.store.update("alice", &mut |st| st.attempts = 5).unwrap();
    let (o, conv) = w.login(&["123456"]);
    assert_eq!(o, Outcome::MaxTries);
    assert_eq!(w.api.checks(), 0);
    assert_eq!(conv.errors(), vec![msg::TOO_MANY_WRONG]);
}

#[test]
fn a_pending_code_is_reused_by_the_next_login_within_retry_time() {
    let w = World::new("");
    assert_eq!(w.login(&["2"]).0, Outcome::ConvErr);
    assert_eq!(w.sends(), 1);
    w.advance(60);
    let (o, conv) = w.login(&["123456"]);
    assert_eq!(o, Outcome::Success);
    assert_eq!(w.sends(), 1, "no second SMS");
    assert_eq!(
        conv.prompts(),
        vec!["A code was already sent by voice call to (XXX) XXX-2671. Enter code (r: new code, m: other method): "],
        "no menu: the pending code's method is used"
    );
    assert_eq!(
        w.api.calls().last(),
        Some(&Call::Check(format!("VE{:032}", 1), "123456".into()))
    );
    // After retry_time a new login sends a new code.
    w.login(&["2"]);
    w.advance(181);
    w.login(&["2", "123456"]);
    assert_eq!(w.sends(), 3);
}

#[test]
fn resend_cooldown_counts_from_the_other_logins_send() {
    let w = World::new(SMS_ONLY);
    w.login(&[]);
    w.advance(100);
    let (_, conv) = w.login(&["r"]);
    assert_eq!(
        conv.errors(),
        vec!["You can request a new code in 80 seconds."]
    );
    assert_eq!(w.sends(), 1);
}

#[test]
fn remembered_origin_skips_the_code_only_from_the_same_host_and_in_time() {
    let w = World::new("allowed_methods = [\"sms\"]\nremember = 3600\n");
    assert_eq!(w.login_from("192.0.2.1", &["123456"]).0, Outcome::Success);
    w.advance(60);
    let (o, conv) = w.login_from("192.0.2.1", &[]);
    assert_eq!(o, Outcome::Success);
    assert_eq!(w.sends(), 1, "remembered: nothing sent");
    assert!(conv
        .shown
        .iter()
        .any(|m| matches!(m, Shown::Info(t) if t.contains("skipped"))));
    let skipped = w
        .log
        .0
        .borrow()
        .iter()
        .filter(|r| r.get("event") == Some("verification_skipped"))
        .count();
    assert_eq!(skipped, 1);

    assert_eq!(w.login_from("192.0.2.2", &["123456"]).0, Outcome::Success);
    assert_eq!(w.sends(), 2, "another host is not remembered");
    w.advance(3600);
    assert_eq!(
        w.login_from("192.0.2.1", &[]).0,
        Outcome::ConvErr,
        "expired: asked again"
    );
    assert_eq!(w.sends(), 3);
}

#[test]
fn remember_off_by_default() {
    let w = World::new(SMS_ONLY);
    w.login(&["123456"]);
    assert!(w.state().remembered.is_empty());
    assert_eq!(w.login(&[]).0, Outcome::ConvErr);
}

struct BrokenStore(StateError);
impl StateStore for BrokenStore {
    fn update(
        &self,
        _: &str,
        _: &mut dyn FnMut(&mut crate::state::UserState),
    ) -> Result<(), StateError> {
        Err(self.0.clone())
    }
}

fn run_with_store(store: &dyn StateStore) -> (Outcome, ScriptedConv, FakeApi) {
    let cfg = config(SMS_ONLY);
    let mut conv = ScriptedConv::new(&["123456"]);
    let api = FakeApi::default();
    let phones = FakePhones::new(Ok(Some(ALICE_PHONE.into())));
    let clock = FakeClock(Cell::new(5));
    let log = MemoryLog::default();
    let login = Login {
        user: "alice",
        rhost: None,
        tty: None,
        service: "su",
        hostname: "h",
        caller_uid: 1000,
        session: Some("boot/42/1234".into()),
    };
    let deps = Deps {
        api: &api,
        phones: &phones,
        store,
        clock: &clock,
        log: &log,
    };
    let outcome = deps.drive(&cfg, &login, &mut conv);
    (outcome, conv, api)
}

#[test]
fn state_problems_fail_closed_without_sending() {
    let (o, conv, api) = run_with_store(&BrokenStore(StateError::Corrupt("x".into())));
    assert_eq!(o, Outcome::ServiceErr);
    assert_eq!(conv.errors(), vec![msg::damaged_state("alice")]);
    assert!(api.calls().is_empty());
    let (o, _, api) = run_with_store(&BrokenStore(StateError::Unsafe("x".into())));
    assert_eq!(o, Outcome::ServiceErr);
    assert!(api.calls().is_empty());
    let (o, conv, _) = run_with_store(&BrokenStore(StateError::Busy));
    assert_eq!(
        o,
        Outcome::AuthErr,
        "never AUTHINFO_UNAVAIL, which a stack may ignore"
    );
    assert_eq!(conv.errors(), vec![msg::BUSY]);
}

const NEW_PHONE: &str = "(201) 555-0177";
const REGISTER: &str = "allow_register = true\nallowed_methods = [\"sms\"]\n";

impl World {
    fn sent_to(&self) -> Vec<String> {
        self.api
            .calls()
            .iter()
            .filter_map(|c| match c {
                Call::Send(to, ..) => Some(to.clone()),
                _ => None,
            })
            .collect()
    }
    fn events(&self, name: &str) -> Vec<Record> {
        events_named(&self.log, name)
    }
}

#[test]
fn no_number_without_registration_is_auth_err() {
    let w = World::with_phones("allow_register = false\n", FakePhones::directory(None));
    let (o, conv) = w.login(&["123456"]);
    assert_eq!(o, Outcome::AuthErr);
    assert_eq!(conv.errors(), vec![msg::NO_PHONE]);
    // Registration on, but nowhere to store numbers: still off.
    let w = World::with_phones(REGISTER, FakePhones::new(Ok(None)));
    assert_eq!(w.login(&[NEW_PHONE, "123456"]).0, Outcome::AuthErr);
    assert!(w.api.calls().is_empty());
}

#[test]
fn registration_stores_the_number_only_after_the_code() {
    let w = World::with_phones(REGISTER, FakePhones::directory(None));
    let (o, conv) = w.login(&[NEW_PHONE, "123456"]);
    assert_eq!(o, Outcome::Success);
    assert_eq!(
        conv.prompts(),
        vec![
            "Enter your mobile phone number for two-factor authentication: ",
            "Code sent by text message to (XXX) XXX-0177. Enter code (r: new code): ",
        ]
    );
    assert_eq!(w.sent_to(), vec!["+12015550177"]);
    assert_eq!(*w.phones.stored.borrow(), vec!["+12015550177"]);
    assert_eq!(w.api.lookups.get(), 1, "the new number was looked up");
    let reg = w.events("registered");
    assert_eq!(reg.len(), 1);
    assert_eq!(reg[0].get("to"), Some("+1******0177"));
}

#[test]
fn registration_with_wrong_codes_stores_nothing() {
    let w = World::with_phones(REGISTER, FakePhones::directory(None));
    let (o, _) = w.login(&[
        NEW_PHONE, "1", "000001", "000002", "000003", "000004", "000005",
    ]);
    assert_eq!(o, Outcome::MaxTries);
    assert!(w.phones.stored.borrow().is_empty());
    assert!(w.events("registered").is_empty());
}

#[test]
fn optional_registration_can_be_skipped() {
    let w = World::with_phones(
        &format!("{REGISTER}register_optional = true\n"),
        FakePhones::directory(None),
    );
    let (o, conv) = w.login(&["skip"]);
    assert_eq!(o, Outcome::Ignore);
    assert_eq!(
        conv.prompts(),
        vec!["Enter your mobile phone number for two-factor authentication (or type skip): "]
    );
    assert_eq!(w.events("registration_skipped").len(), 1);
    assert!(w.api.calls().is_empty());
    // Without register_optional, "skip" is just not a number.
    let w = World::with_phones(REGISTER, FakePhones::directory(None));
    assert_eq!(w.login(&["skip", "skip", "skip"]).0, Outcome::AuthErr);
}

#[test]
fn entered_numbers_are_checked_and_explained() {
    let w = World::with_phones(REGISTER, FakePhones::directory(None));
    let (o, conv) = w.login(&["+44 20 7946 0018", "hello", NEW_PHONE, "123456"]);
    assert_eq!(o, Outcome::Success);
    assert_eq!(
        conv.errors(),
        vec![
            "Numbers from GB are not allowed.",
            "That does not look like a phone number."
        ]
    );
    let w = World::with_phones(REGISTER, FakePhones::directory(None));
    *w.api.line_info.borrow_mut() = Some(Ok(LineInfo {
        valid: true,
        line_type: Some("landline".into()),
    }));
    let (o, conv) = w.login(&[NEW_PHONE, NEW_PHONE, NEW_PHONE]);
    assert_eq!(o, Outcome::AuthErr);
    assert_eq!(
        conv.errors()[0],
        "Landline numbers cannot receive codes; use a mobile number."
    );
    assert!(w.api.calls().is_empty(), "no code sent to a refused number");
}

#[test]
fn lookup_failure_fails_closed() {
    let w = World::with_phones(REGISTER, FakePhones::directory(None));
    *w.api.line_info.borrow_mut() = Some(Err(ApiError::Unavailable("timeout".into())));
    let (o, conv) = w.login(&[NEW_PHONE, "123456"]);
    assert_eq!(o, Outcome::AuthErr);
    assert_eq!(
        conv.errors(),
        vec!["Unable to check this number right now; try again later."]
    );
    assert!(w.api.calls().is_empty());
    assert!(w.phones.stored.borrow().is_empty());
}

#[test]
fn change_verifies_the_old_number_then_the_new_one() {
    let w = World::with_phones(SMS_ONLY, FakePhones::directory(Some(ALICE_PHONE)));
    let (o, conv) = w.login(&["change", "123456", "(201) 555-0188", "123456"]);
    assert_eq!(o, Outcome::Success);
    let offer =
        "Code sent by text message to (XXX) XXX-2671. Enter code (r: new code, c: change number): ";
    assert_eq!(
        conv.prompts(),
        vec![
            offer,
            PROMPT,
            "Enter your new mobile phone number: ",
            "Code sent by text message to (XXX) XXX-0188. Enter code (r: new code): ",
        ]
    );
    assert_eq!(w.sent_to(), vec![ALICE_PHONE, "+12015550188"]);
    assert_eq!(*w.phones.stored.borrow(), vec!["+12015550188"]);
    let ev = w.events("phone_changed");
    assert_eq!(
        (ev[0].get("old"), ev[0].get("to")),
        (Some("+1******2671"), Some("+1******0188"))
    );
}

#[test]
fn change_needs_the_old_code_first() {
    let w = World::with_phones(
        "allowed_methods = [\"sms\"]\nmax_attempts = 2\n",
        FakePhones::directory(Some(ALICE_PHONE)),
    );
    let (o, conv) = w.login(&["c", "000001", "000002", "(201) 555-0188"]);
    assert_eq!(o, Outcome::MaxTries);
    assert!(!conv.prompts().iter().any(|p| p.contains("new mobile")));
    assert!(w.phones.stored.borrow().is_empty());
}

#[test]
fn a_code_alone_logs_in_and_same_number_is_refused() {
    let w = World::with_phones(SMS_ONLY, FakePhones::directory(Some(ALICE_PHONE)));
    let (o, conv) = w.login(&["123456"]);
    assert_eq!((o, conv.prompts().len()), (Outcome::Success, 1));
    let w = World::with_phones(SMS_ONLY, FakePhones::directory(Some(ALICE_PHONE)));
    let (_, conv) = w.login(&["change", "123456", "(201) 555-2671"]);
    assert_eq!(conv.errors(), vec!["That is the number already on file."]);
}

#[test]
fn change_and_other_method_at_the_code_prompt_with_several_methods() {
    let w = World::with_phones("", FakePhones::directory(Some(ALICE_PHONE)));
    let (o, conv) = w.login(&["2", "c", "123456", "(201) 555-0188", "123456"]);
    assert_eq!(o, Outcome::Success);
    assert!(
        !conv.prompts()[0].contains("change"),
        "the menu has no change entry: {:?}",
        conv.prompts()
    );
    assert_eq!(
        conv.prompts()[1],
        "Code sent by voice call to (XXX) XXX-2671. Enter code (r: new code, m: other method, c: change number): "
    );
    let sends: Vec<Method> = w
        .api
        .calls()
        .iter()
        .filter_map(|c| match c {
            Call::Send(_, m, _) => Some(*m),
            _ => None,
        })
        .collect();
    assert_eq!(
        sends,
        vec![Method::Call, Method::Call],
        "the new number gets the same method"
    );
    assert_eq!(*w.phones.stored.borrow(), vec!["+12015550188"]);
}

#[test]
fn m_at_the_code_prompt_sends_by_another_method_like_a_resend() {
    let w = World::with_phones(
        "retry_time = 60\n",
        FakePhones::new(Ok(Some(ALICE_PHONE.into()))),
    );
    // Within retry_time: the menu, then a wait, no second send.
    let (o, conv) = w.login(&["1", "m", "2"]);
    assert_eq!(o, Outcome::ConvErr);
    assert_eq!(w.sends(), 1);
    assert_eq!(
        conv.errors(),
        vec!["You can request a new code in 60 seconds."]
    );
    // After it: the old verification is cancelled, the new method sends.
    let (o, conv, api) = timed_run("retry_time = 60\n", &["1", "m", "2", "123456"], &[61, 0]);
    assert_eq!(o, Outcome::Success);
    let (first, second) = (format!("VE{:032}", 1), format!("VE{:032}", 2));
    assert_eq!(
        api.calls(),
        vec![
            Call::Send(ALICE_PHONE.into(), Method::Sms, None),
            Call::Cancel(first),
            Call::Send(ALICE_PHONE.into(), Method::Call, None),
            Call::Check(second, "123456".into()),
        ]
    );
    assert!(
        conv.prompts()[3].starts_with("Code sent by voice call"),
        "{:?}",
        conv.prompts()
    );
}

#[test]
fn change_is_not_offered_when_disallowed_or_read_only() {
    let w = World::with_phones(
        "allowed_methods = [\"sms\"]\nallow_change = false\n",
        FakePhones::directory(Some(ALICE_PHONE)),
    );
    let (o, conv) = w.login(&["123456"]);
    assert_eq!(o, Outcome::Success);
    assert_eq!(conv.prompts(), vec![PROMPT]);
    // "change" typed at the code prompt is just a malformed code.
    let (_, conv) = World::with_phones(
        "allowed_methods = [\"sms\"]\nallow_change = false\n",
        FakePhones::directory(Some(ALICE_PHONE)),
    )
    .login(&["change"]);
    assert_eq!(conv.errors(), vec![msg::BAD_FORMAT]);
    // A read-only source: the code prompt offers no change.
    let w = World::with_phones(SMS_ONLY, FakePhones::new(Ok(Some(ALICE_PHONE.into()))));
    let (_, conv) = w.login(&["c"]);
    assert_eq!(conv.prompts()[0], PROMPT);
    assert_eq!(conv.errors(), vec![msg::BAD_FORMAT]);
}

#[test]
fn a_stored_number_from_a_refused_country_is_denied() {
    let w = World::with_phones(
        SMS_ONLY,
        FakePhones::new(Ok(Some("+44 20 7946 0018".into()))),
    );
    let (o, conv) = w.login(&["123456"]);
    assert_eq!(o, Outcome::AuthErr);
    assert_eq!(
        conv.errors(),
        vec!["Numbers from GB are not allowed. Contact your administrator."]
    );
    assert!(w.api.calls().is_empty());
    assert_eq!(w.api.lookups.get(), 0, "no lookup on a plain login");
}

#[test]
fn only_groups_exempt_groups_and_trusted_networks_skip_with_ignore() {
    for (extra, rhost, want) in [
        (
            "only_groups = [\"admins\"]\n",
            "192.0.2.7",
            Some("not_in_only_groups"),
        ),
        ("only_groups = [\"staff\"]\n", "192.0.2.7", None),
        (
            "exempt_groups = [\"staff\"]\n",
            "192.0.2.7",
            Some("exempt_group:staff"),
        ),
        ("exempt_groups = [\"admins\"]\n", "192.0.2.7", None),
        (
            "trusted_networks = [\"192.0.2.0/24\"]\n",
            "192.0.2.7",
            Some("trusted_network:192.0.2.0/24"),
        ),
        (
            "trusted_networks = [\"192.0.2.0/24\"]\n",
            "198.51.100.1",
            None,
        ),
        (
            "trusted_networks = [\"0.0.0.0/0\"]\n",
            "host.example.com",
            None,
        ),
    ] {
        let w = World::new(&format!("{SMS_ONLY}{extra}"));
        let (o, conv) = w.login_from(rhost, &["123456"]);
        match want {
            Some(reason) => {
                assert_eq!(o, Outcome::Ignore, "{extra}");
                assert!(conv.shown.is_empty());
                assert!(w.api.calls().is_empty());
                assert_eq!(
                    w.events("verification_skipped")[0].get("reason"),
                    Some(reason)
                );
            }
            None => assert_eq!(o, Outcome::Success, "{extra} {rhost}"),
        }
    }
}

fn send_error(code: u32, status: u16) -> ApiError {
    ApiError::Twilio {
        http_status: status,
        code,
        message: "m".into(),
    }
}

#[test]
fn a_refused_locale_is_retried_once_without_it_and_logged() {
    for code in [20404, 60200, 60331] {
        let api = FakeApi::default();
        api.send_errors
            .borrow_mut()
            .push_back(send_error(code, 404));
        let cfg = config(&format!("{SMS_ONLY}\nlanguage = \"pt_BR\"\n"));
        let r = run_with(
            &cfg,
            "alice",
            Ok(Some(ALICE_PHONE.into())),
            &["123456"],
            api,
        );
        assert_eq!(r.outcome, Outcome::Success, "{code}");
        assert_eq!(
            *r.api.locales.borrow(),
            vec![Some("pt-BR".to_string()), None],
            "{code}"
        );
        let warned = r.log.0.borrow().iter().any(|x| {
            x.level == Level::Warning && x.get("msg").unwrap_or("").contains("Locale \"pt-BR\"")
        });
        assert!(warned, "{code}");
    }
    // Any other error is not the locale's: no retry.
    let api = FakeApi::default();
    api.send_errors
        .borrow_mut()
        .push_back(send_error(60203, 429));
    let r = run_with(
        &config(SMS_ONLY),
        "alice",
        Ok(Some(ALICE_PHONE.into())),
        &["123456"],
        api,
    );
    assert_eq!(r.outcome, Outcome::AuthErr);
    assert_eq!(*r.api.locales.borrow(), vec![Some("en".to_string())]);
}

#[test]
fn more_send_errors() {
    for (code, status, want, text) in [
        (60212, 429, Outcome::AuthErr, msg::RATE_LIMITED),
        (20429, 429, Outcome::AuthErr, msg::RATE_LIMITED),
        (60410, 403, Outcome::AuthErr, msg::BLOCKED),
        (60200, 400, Outcome::AuthErr, msg::SEND_FAILED),
        (99999, 400, Outcome::AuthErr, msg::SEND_FAILED),
    ] {
        let r = failing_send(send_error(code, status));
        assert_eq!(
            (r.outcome, r.conv.errors()),
            (want, vec![text.to_string()]),
            "{code}"
        );
    }
    let r = failing_send(send_error(60410, 403));
    assert!(r
        .log
        .0
        .borrow()
        .iter()
        .any(|x| x.level == Level::Warning && x.get("msg").unwrap_or("").contains("60410")));
}

#[test]
fn channel_that_cannot_reach_the_number_offers_the_others() {
    for code in [60205, 60223] {
        let w = World::new("");
        w.api
            .send_errors
            .borrow_mut()
            .push_back(send_error(code, 400));
        let (o, conv) = w.login(&["1", "2", "123456"]);
        assert_eq!(o, Outcome::Success, "{code}");
        assert_eq!(
            conv.errors()[0],
            "A code cannot be sent to this number by text message; choose another way."
        );
        assert!(
            conv.prompts()[1].contains("1. voice call\n  2. WhatsApp\nEnter 1-2: "),
            "{:?}",
            conv.prompts()
        );
        assert!(matches!(
            w.api.calls()[1],
            Call::Send(_, Method::Whatsapp, _)
        ));
    }
    // No other method allowed: denied with a clear message.
    let r = failing_send(send_error(60205, 400));
    assert_eq!(
        (r.outcome, r.conv.errors()),
        (Outcome::AuthErr, vec![msg::NO_METHOD_REACHES.to_string()])
    );
}

// --- One account, one key (a directory that ignores case) -----------------

#[test]
fn any_capitalisation_is_keyed_by_the_account_name() {
    let w = World::with_phones(
        "allowed_methods = [\"sms\"]\nallow_change = false\nservice_name = \"{user}@{host}\"\n",
        FakePhones::directory(Some(ALICE_PHONE)),
    );
    let (o, conv) = w.login_as("ALICE", &["123456"]);
    assert_eq!(o, Outcome::Success);
    assert_eq!(conv.prompts(), vec![PROMPT], "her number, no registration");
    assert_eq!(*w.phones.keys.borrow(), vec!["alice"]);
    assert!(
        matches!(&w.api.calls()[0], Call::Send(to, _, Some(f)) if to == ALICE_PHONE && f == "alice@bastion")
    );
    // Every record names the account, and the typed name beside it.
    let log = w.log.0.borrow();
    let with_user: Vec<_> = log.iter().filter(|r| r.get("user").is_some()).collect();
    assert!(!with_user.is_empty());
    for r in with_user {
        assert_eq!(r.get("user"), Some("alice"), "{r:?}");
        assert_eq!(r.get("typed_user"), Some("ALICE"), "{r:?}");
    }
    drop(log);
    // The name as the account spells it adds no typed_user.
    let (o, _) = w.login(&["123456"]);
    assert_eq!(o, Outcome::Success);
    let sent = w.events("verification_sent");
    assert_eq!(sent[1].get("typed_user"), None);
}

#[test]
fn wrong_codes_under_any_spelling_share_one_count_and_one_lockout() {
    let w = World::new("allowed_methods = [\"sms\"]\nmax_attempts = 3\n");
    assert_eq!(w.login_as("ALICE", &["000001"]).0, Outcome::ConvErr);
    assert_eq!(w.login_as("Alice", &["000002"]).0, Outcome::ConvErr);
    assert_eq!(w.state().attempts, 2, "one count, kept under alice");
    assert_eq!(w.login_as("aLiCe", &["000003"]).0, Outcome::MaxTries);
    let sends = w.sends();
    for spelling in ["alice", "ALICE", "Alice"] {
        let (o, conv) = w.login_as(spelling, &["123456"]);
        assert_eq!(o, Outcome::MaxTries, "{spelling} is locked out too");
        assert!(conv.prompts().is_empty());
    }
    assert_eq!(w.sends(), sends, "no code while locked out");
}

#[test]
fn another_spelling_cannot_register_or_skip() {
    let w = World::with_phones(
        &format!("{REGISTER}register_optional = true\nallow_change = false\n"),
        FakePhones::directory(Some(ALICE_PHONE)),
    );
    let (o, conv) = w.login_as("ALICE", &["skip"]);
    assert_eq!(o, Outcome::ConvErr, "asked for a code, not a number");
    assert_eq!(conv.prompts()[0], PROMPT);
    assert!(w.events("registration_skipped").is_empty());
    assert!(w.phones.stored.borrow().is_empty());
    assert_eq!(w.sent_to(), vec![ALICE_PHONE]);
}

#[test]
fn a_failed_user_lookup_denies_without_sending() {
    let mut w = World::new(SMS_ONLY);
    w.users = FakeUsers::failing(Fault::User);
    let (o, conv) = w.login_as("ALICE", &["123456"]);
    assert_eq!(
        o,
        Outcome::AuthErr,
        "never USER_UNKNOWN or AUTHINFO_UNAVAIL"
    );
    assert_eq!(conv.errors(), vec![msg::UNAVAILABLE]);
    assert!(conv.prompts().is_empty());
    assert!(w.api.calls().is_empty());
    let log = w.log.0.borrow();
    let line = log.iter().find(|r| r.level == Level::Error).unwrap();
    assert!(line.get("msg").unwrap().contains("cannot look up the user"));
    assert_eq!(line.get("typed_user"), Some("ALICE"));
}

#[test]
fn unknown_names_are_user_unknown_without_a_lookup_error() {
    let w = World::new(SMS_ONLY);
    for name in ["", "mallory", &"a".repeat(300)] {
        let (o, conv) = w.login_as(name, &["123456"]);
        assert_eq!(o, Outcome::UserUnknown, "{name}");
        assert!(conv.shown.is_empty());
    }
    assert!(w.api.calls().is_empty());
}

// --- Group lookups fail closed ----------------------------------------------

#[test]
fn a_failed_group_lookup_means_the_user_verifies() {
    for (extra, fault) in [
        // She is not in admins: only a failure could skip her.
        ("only_groups = [\"admins\"]\n", Some(Fault::GroupList)),
        ("only_groups = [\"admins\"]\n", Some(Fault::Group("admins"))),
        ("only_groups = [\"admins\", \"nosuch\"]\n", None),
        ("only_groups = [\"nosuch\"]\n", None),
        // She is in staff, but a lookup failed: no exemption either.
        ("exempt_groups = [\"staff\"]\n", Some(Fault::GroupList)),
        ("exempt_groups = [\"staff\"]\n", Some(Fault::Group("staff"))),
        ("exempt_groups = [\"staff\", \"nosuch\"]\n", None),
    ] {
        let mut w = World::new(&format!("{SMS_ONLY}{extra}"));
        if let Some(f) = fault {
            w.users = FakeUsers::failing(f);
        }
        let (o, conv) = w.login(&["123456"]);
        assert_eq!(o, Outcome::Success, "{extra}");
        assert_eq!(conv.prompts(), vec![PROMPT], "{extra}");
        assert!(w.events("verification_skipped").is_empty(), "{extra}");
        let log = w.log.0.borrow();
        assert!(
            log.iter().any(|r| r.level == Level::Warning
                && r.get("msg").unwrap_or("").contains("group lookup failed")),
            "{extra}: {log:?}"
        );
    }
}

#[test]
fn a_group_failure_does_not_stop_a_trusted_network_skip() {
    let mut w = World::new(&format!(
        "{SMS_ONLY}only_groups = [\"admins\"]\ntrusted_networks = [\"192.0.2.0/24\"]\n"
    ));
    w.users = FakeUsers::failing(Fault::GroupList);
    let (o, _) = w.login(&[]);
    assert_eq!(o, Outcome::Ignore);
    assert_eq!(
        w.events("verification_skipped")[0].get("reason"),
        Some("trusted_network:192.0.2.0/24")
    );
}

// --- Remembered logins are bound to who and where; new numbers end them ---

fn local_login<'a>(service: &'a str, uid: u32, session: Option<&str>) -> Login<'a> {
    Login {
        user: "alice",
        rhost: None,
        tty: Some("/dev/pts/3"),
        service,
        hostname: "h",
        caller_uid: uid,
        session: session.map(String::from),
    }
}

impl World {
    fn login_with(&self, login: &Login, answers: &[&str]) -> (Outcome, ScriptedConv) {
        let mut conv = ScriptedConv::new(answers);
        let deps = Deps {
            api: &self.api,
            phones: &self.phones,
            store: &self.store,
            clock: &self.clock,
            log: &self.log,
        };
        let outcome = deps.drive(&self.cfg, login, &mut conv);
        (outcome, conv)
    }
}

#[test]
fn origins_name_the_service_and_for_terminals_the_caller_and_session() {
    let remote = Login {
        rhost: Some("2001:db8::1"),
        ..local_login("sshd", 0, None)
    };
    assert_eq!(remote.origin().unwrap(), "svc=sshd uid=0 rhost=2001:db8::1");
    let other_caller = Login {
        caller_uid: 1000,
        ..remote.clone()
    };
    assert_ne!(other_caller.origin(), remote.origin());
    let local = local_login("su", 1000, Some("b00t-id/42/1234"));
    assert_eq!(
        local.origin().unwrap(),
        "svc=su uid=1000 tty=/dev/pts/3 session=b00t-id/42/1234"
    );
    // Each part changes the origin.
    for other in [
        local_login("sudo", 1000, Some("b00t-id/42/1234")),
        local_login("su", 1001, Some("b00t-id/42/1234")),
        local_login("su", 1000, Some("b00t-id/43/1234")),
        Login {
            tty: Some("/dev/pts/4"),
            ..local.clone()
        },
    ] {
        assert_ne!(other.origin(), local.origin());
    }
    // No session that can be told: nothing to remember by.
    assert_eq!(local_login("su", 1000, None).origin(), None);
    // Separators inside a part cannot forge another part.
    let forged = Login {
        service: "su uid=0",
        ..local.clone()
    };
    assert!(forged
        .origin()
        .unwrap()
        .starts_with("svc=su%20uid%3D0 uid=1000 "));
    // Too long for the state file: not remembered at all.
    let long = "h".repeat(crate::state::MAX_ORIGIN_LEN);
    let far = Login {
        rhost: Some(&long),
        ..remote.clone()
    };
    assert_eq!(far.origin(), None);
}

#[test]
fn a_local_login_is_remembered_only_for_the_same_service_caller_and_session() {
    let w = World::new("allowed_methods = [\"sms\"]\nremember = 3600\n");
    let proven = local_login("su", 1000, Some("boot/42/1234"));
    assert_eq!(w.login_with(&proven, &["123456"]).0, Outcome::Success);
    assert_eq!(
        w.login_with(&proven, &[]).0,
        Outcome::Success,
        "same: remembered"
    );
    for other in [
        local_login("sudo", 1000, Some("boot/42/1234")),
        local_login("su", 1001, Some("boot/42/1234")),
        local_login("su", 1000, Some("boot/43/1234")),
        local_login("su", 1000, None),
    ] {
        assert_eq!(w.login_with(&other, &[]).0, Outcome::ConvErr, "{other:?}");
    }
    // One new code, which the later logins reuse.
    assert_eq!(w.sends(), 2);
    // Without a session nothing is stored either.
    let w = World::new("allowed_methods = [\"sms\"]\nremember = 3600\n");
    w.login_with(&local_login("su", 1000, None), &["123456"]);
    assert!(w.state().remembered.is_empty());
}

#[test]
fn a_number_changed_meanwhile_is_not_overwritten() {
    let w = World::with_phones(
        &format!("{REGISTER}remember = 3600\n"),
        FakePhones::directory(None),
    );
    // The administrator stored a number after this login found none.
    *w.phones.directory_now.borrow_mut() = Some(Some("+12015550199".into()));
    let (o, conv) = w.login(&[NEW_PHONE, "123456"]);
    assert_eq!(o, Outcome::AuthErr);
    assert_eq!(conv.errors(), vec![msg::NUMBER_CHANGED]);
    assert!(w.phones.stored.borrow().is_empty());
    assert!(w.events("registered").is_empty());
    let failed = w.events("verification_failed");
    assert_eq!(failed[0].get("reason"), Some("number_changed_during_login"));
    assert!(
        w.state().remembered.is_empty(),
        "a refused login is not remembered"
    );

    // A change, while the administrator removed the number.
    let w = World::with_phones(SMS_ONLY, FakePhones::directory(Some(ALICE_PHONE)));
    *w.phones.directory_now.borrow_mut() = Some(None);
    let (o, conv) = w.login(&["change", "123456", "(201) 555-0188", "123456"]);
    assert_eq!(o, Outcome::AuthErr);
    assert_eq!(conv.errors(), vec![msg::NUMBER_CHANGED]);
    assert!(w.phones.stored.borrow().is_empty());
}

#[test]
fn a_new_number_ends_every_remembered_login() {
    let w = World::with_phones(
        "allowed_methods = [\"sms\"]\nremember = 3600\n",
        FakePhones::directory(Some(ALICE_PHONE)),
    );
    assert_eq!(
        w.login_from("192.0.2.1", &["", "123456"]).0,
        Outcome::Success
    );
    assert_eq!(w.state().remembered.len(), 1);
    let (o, _) = w.login_from(
        "192.0.2.2",
        &["change", "123456", "(201) 555-0188", "123456"],
    );
    assert_eq!(o, Outcome::Success);
    assert!(w.state().remembered.is_empty(), "{:?}", w.state());
    let ended = w.events("remembered_ended");
    assert_eq!(
        (ended[0].get("count"), ended[0].get("reason")),
        (Some("1"), Some("phone_changed"))
    );
    assert_eq!(w.login_from("192.0.2.1", &[]).0, Outcome::ConvErr);
}

// --- [[policy]] blocks --------------------------------------------------------

/// A lenient block for admins (she is not in it) before a strict one for
/// staff (she is): any doubt about the first must deny, not pick either.
const POLICIES: &str = "[[policy]]\ngroups = [\"admins\"]\nmax_attempts = 20\n[[policy]]\ngroups = [\"staff\"]\nmax_attempts = 1\n";

#[test]
fn a_group_policy_applies_by_group_id() {
    let w = World::new(&format!("{SMS_ONLY}{POLICIES}"));
    let (o, _) = w.login(&["000000"]);
    assert_eq!(o, Outcome::MaxTries, "staff's block: one attempt");
}

#[test]
fn a_policy_that_cannot_be_decided_denies_the_login() {
    for (extra, fault) in [
        (POLICIES.to_string(), Some(Fault::GroupList)),
        (POLICIES.to_string(), Some(Fault::Group("admins"))),
        (POLICIES.replace("\"admins\"", "\"nosuch\""), None),
    ] {
        let mut w = World::new(&format!("{SMS_ONLY}{extra}"));
        if let Some(f) = fault {
            w.users = FakeUsers::failing(f);
        }
        let (o, conv) = w.login(&["123456"]);
        assert_eq!(o, Outcome::AuthErr, "{extra}");
        assert!(conv.prompts().is_empty(), "{extra}");
        assert_eq!(w.sends(), 0, "{extra}");
        let log = w.log.0.borrow();
        assert!(
            log.iter().any(|r| r.level == Level::Error
                && r.get("msg")
                    .unwrap_or("")
                    .contains("cannot decide which [[policy]] applies: policy[1]: ")),
            "{extra}: {log:?}"
        );
    }
}

#[test]
fn a_certain_match_before_an_undecided_block_is_used() {
    // Her name matches the first block; the broken second one is never asked.
    let mut w = World::new(&format!(
        "{SMS_ONLY}[[policy]]\nusers = [\"alice\"]\nmax_attempts = 1\n{POLICIES}"
    ));
    w.users = FakeUsers::failing(Fault::GroupList);
    let (o, _) = w.login(&["000000"]);
    assert_eq!(o, Outcome::MaxTries);
}
