//! The PAM entry points: a thin shell that reads PAM items, runs the flow and
//! maps its outcome to a PAM code. No panic crosses this boundary.

use crate::clock::SystemClock;
use crate::config::{Config, DEFAULT_PATH};
use crate::conversation::{terminal_safe, ConvError, Conversation};
use crate::events::{EventSink, Level, Record, SystemLog};
use crate::flow::{self, Env, Login, Outcome};
use crate::i18n::{Msg, Texts};
use crate::pam_ffi::*;
use crate::phone_book::Sources;
use crate::state::StateDir;
use crate::twilio_client::TwilioClient;
use crate::unprivileged::{self, Decision, Ids, Mode};
use crate::users::{SystemUsers, UserDb};
use pamsm::{pam_module, Pam, PamError, PamFlags, PamLibExt, PamServiceModule};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::Duration;

struct TwilioModule;

pam_module!(TwilioModule);

impl PamServiceModule for TwilioModule {
    fn authenticate(pamh: Pam, flags: PamFlags, args: Vec<String>) -> PamError {
        guarded(|| authenticate(&pamh, flags, &args))
    }

    fn setcred(_: Pam, _: PamFlags, _: Vec<String>) -> PamError {
        PamError::SUCCESS
    }
}

/// A panic here would unwind into C (sshd, sudo) and abort it: turn it into
/// PAM_SYSTEM_ERR and a log line instead.
fn guarded(f: impl FnOnce() -> PamError) -> PamError {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(code) => code,
        Err(_) => {
            SystemLog::syslog_only(false).record(Record::message(
                Level::Error,
                "internal error (panic) in pam_twilio_2fa; denying the login; please report this bug",
            ));
            PamError::SYSTEM_ERR
        }
    }
}

/// Module arguments from the stack line.
struct Args {
    config: PathBuf,
    debug: bool,
    /// What to do when PAM runs without root (a screen locker).
    unprivileged: Mode,
    /// Test-only: forces a panic inside the core (debug builds only).
    panic_for_test: bool,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut out = Args {
        config: PathBuf::from(DEFAULT_PATH),
        debug: false,
        unprivileged: Mode::default(),
        panic_for_test: false,
    };
    for a in args {
        if let Some(p) = a.strip_prefix("config=") {
            out.config = PathBuf::from(p);
        } else if a == "debug" {
            out.debug = true;
        } else if let Some(v) = a.strip_prefix("unprivileged=") {
            out.unprivileged = Mode::parse(v).ok_or_else(|| {
                format!("module argument \"{a}\": use unprivileged=deny or unprivileged=ignore")
            })?;
        } else if cfg!(debug_assertions) && a == "test_panic" {
            out.panic_for_test = true;
        } else {
            // A typo could silently weaken the stack: refuse it.
            return Err(format!(
                "unknown module argument \"{a}\"; known: config=PATH, debug, unprivileged=deny|ignore"
            ));
        }
    }
    Ok(out)
}

fn authenticate(pamh: &Pam, flags: PamFlags, args: &[String]) -> PamError {
    let silent = flags.contains(PamFlags::SILENT);
    let mut conv = PamConversation::new(pamh, silent);
    let args = match parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            SystemLog::syslog_only(false).record(Record::message(Level::Error, e));
            // No config, so no language: English.
            let _ = conv.error(&Texts::english().text(Msg::SetupError));
            return PamError::SERVICE_ERR;
        }
    };
    let user = match pamh.get_user(None) {
        Ok(Some(u)) => match u.to_str() {
            Ok(u) => u.to_string(),
            Err(_) => return PamError::USER_UNKNOWN,
        },
        Ok(None) => return PamError::USER_UNKNOWN,
        Err(e) => return e,
    };
    let rhost = item_string(pamh.get_rhost());
    let tty = tty_item(pamh);
    let service = item_string(pamh.get_service()).unwrap_or_else(|| "-".into());

    // Without root the config cannot be read: decide from the arguments alone.
    let ids = Ids::current();
    let decision = unprivileged::decide(args.unprivileged, ids, || {
        SystemUsers.lookup(&user).ok().flatten().map(|a| a.uid)
    });
    if let Some(line) = unprivileged::record(decision, ids, &user, &service) {
        SystemLog::syslog_only(args.debug).record(line);
    }
    match decision {
        Decision::Privileged => {}
        Decision::Ignore => return PamError::IGNORE,
        Decision::Deny(_) => {
            // No config, so no language: English.
            let _ = conv.error(&Texts::english().text(Msg::SetupError));
            return PamError::AUTH_ERR;
        }
    }

    let cfg = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            SystemLog::syslog_only(args.debug).record(
                Record::message(
                    Level::Error,
                    format!("{e}; fix it and run `twilio-2fa check-config`"),
                )
                .with("user", user.as_str()),
            );
            // No config, so no language: English.
            let _ = conv.error(&Texts::english().text(Msg::SetupError));
            return PamError::SERVICE_ERR;
        }
    };
    let events = SystemLog::from_config(args.debug, &cfg);
    if args.panic_for_test {
        panic!("test_panic module argument");
    }
    let api = TwilioClient::new(&cfg);
    let phones = Sources::from_config(&cfg);
    // The lock holder may cancel and send (two calls) before it lets go.
    let lock_wait = Duration::from_secs(2 * cfg.http_timeout + 2);
    let state = StateDir::new(cfg.state_dir.clone(), lock_wait);
    let hostname = short_hostname();
    let login = Login {
        user: &user,
        rhost: rhost.as_deref(),
        tty: tty.as_deref(),
        service: &service,
        hostname: &hostname,
        caller_uid: unsafe { libc::getuid() },
        // Only a local login that may be remembered needs it (the policy
        // block that applies is known only later, in the flow).
        session: (cfg.may_remember() && rhost.is_none())
            .then(crate::session::current)
            .flatten(),
    };
    let mut env = Env {
        conv: &mut conv,
        api: &api,
        phones: &phones,
        lookup: &api,
        users: &SystemUsers,
        events: &events,
        clock: &SystemClock,
        state: &state,
    };
    pam_code(flow::authenticate(&cfg, &login, &mut env))
}

fn pam_code(o: Outcome) -> PamError {
    match o {
        Outcome::Success => PamError::SUCCESS,
        Outcome::AuthErr => PamError::AUTH_ERR,
        Outcome::MaxTries => PamError::MAXTRIES,
        Outcome::AuthInfoUnavail => PamError::AUTHINFO_UNAVAIL,
        Outcome::ServiceErr => PamError::SERVICE_ERR,
        Outcome::UserUnknown => PamError::USER_UNKNOWN,
        Outcome::ConvErr => PamError::CONV_ERR,
        Outcome::Ignore => PamError::IGNORE,
    }
}

fn item_string(item: Result<Option<&CStr>, PamError>) -> Option<String> {
    match item {
        Ok(Some(s)) => Some(s.to_string_lossy().into_owned()).filter(|s| !s.is_empty()),
        _ => None,
    }
}

/// PAM_TTY, which pamsm has no getter for.
fn tty_item(pamh: &Pam) -> Option<String> {
    const PAM_TTY: c_int = 3;
    let handle = raw_handle(pamh);
    let mut item: *const c_void = std::ptr::null();
    let rc = unsafe { pam_get_item(handle, PAM_TTY, &mut item) };
    if rc != 0 || item.is_null() {
        return None;
    }
    let s = unsafe { CStr::from_ptr(item as *const c_char) };
    Some(s.to_string_lossy().into_owned()).filter(|s| !s.is_empty())
}

/// `Pam` is #[repr(transparent)] over the raw handle.
fn raw_handle(pamh: &Pam) -> *const c_void {
    unsafe { *(pamh as *const Pam as *const *const c_void) }
}

/// The real uid when it is not root. su, sudo and pkexec's helper run with
/// the caller's real uid, which lets the caller signal the process; sshd and
/// login run with real uid 0.
fn short_hostname() -> String {
    let mut buf = [0u8; 256];
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut c_char, buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).into_owned();
    name.split('.').next().unwrap_or("localhost").to_string()
}

// --- The conversation, over the raw PAM_CONV item -------------------------
//
// pamsm's conv() dereferences a NULL reply array and never wipes or frees the
// answer; this helper handles both.

const PAM_CONV_ITEM: c_int = 5;

#[link(name = "pam")]
extern "C" {
    fn pam_get_item(pamh: *const c_void, item_type: c_int, item: *mut *const c_void) -> c_int;
}

struct PamConversation {
    handle: *const c_void,
    silent: bool,
}

impl PamConversation {
    fn new(pamh: &Pam, silent: bool) -> Self {
        PamConversation {
            handle: raw_handle(pamh),
            silent,
        }
    }

    /// Sends one message; returns the answer for prompts.
    fn send(&mut self, style: c_int, text: &str) -> Result<Option<String>, ConvError> {
        let mut item: *const c_void = std::ptr::null();
        let rc = unsafe { pam_get_item(self.handle, PAM_CONV_ITEM, &mut item) };
        if rc != 0 || item.is_null() {
            return Err(ConvError("no conversation function".into()));
        }
        let conv = unsafe { &*(item as *const PamConv) };
        let Some(func) = conv.conv else {
            return Err(ConvError("no conversation function".into()));
        };
        let text = CString::new(terminal_safe(text)).unwrap_or_default();
        let message = PamMessage {
            msg_style: style,
            msg: text.as_ptr(),
        };
        let mut messages = [&message as *const PamMessage];
        let mut reply: *mut PamResponse = std::ptr::null_mut();
        let rc = unsafe { func(1, messages.as_mut_ptr(), &mut reply, conv.appdata_ptr) };
        let answer = unsafe { take_reply(reply) };
        if rc != 0 {
            return Err(ConvError(format!("conversation failed ({rc})")));
        }
        Ok(answer)
    }

    fn prompt(&mut self, style: c_int, text: &str) -> Result<String, ConvError> {
        self.send(style, text)?
            .ok_or_else(|| ConvError("no answer to a prompt".into()))
    }
}

/// Copies the answer out, wipes the C copy and frees what the application allocated.
unsafe fn take_reply(reply: *mut PamResponse) -> Option<String> {
    if reply.is_null() {
        return None;
    }
    let resp = (*reply).resp;
    let answer = if resp.is_null() {
        None
    } else {
        let s = CStr::from_ptr(resp).to_string_lossy().into_owned();
        let len = libc::strlen(resp);
        libc::explicit_bzero(resp as *mut c_void, len);
        libc::free(resp as *mut c_void);
        Some(s)
    };
    libc::free(reply as *mut c_void);
    answer
}

impl Conversation for PamConversation {
    fn prompt_echo_on(&mut self, prompt: &str) -> Result<String, ConvError> {
        self.prompt(PAM_PROMPT_ECHO_ON, prompt)
    }
    fn prompt_echo_off(&mut self, prompt: &str) -> Result<String, ConvError> {
        self.prompt(PAM_PROMPT_ECHO_OFF, prompt)
    }
    fn error(&mut self, text: &str) -> Result<(), ConvError> {
        self.send(PAM_ERROR_MSG, text).map(|_| ())
    }
    fn info(&mut self, text: &str) -> Result<(), ConvError> {
        if self.silent {
            return Ok(());
        }
        self.send(PAM_TEXT_INFO, text).map(|_| ())
    }
}
