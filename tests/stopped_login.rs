//! A login its caller stops is not an outage.
//!
//! Under su, sudo or pkexec's helper the real uid is the caller's, so the
//! caller may SIGSTOP the process while it waits for Twilio, past
//! `http_timeout`. The request then ends as a timeout; were that
//! PAM_AUTHINFO_UNAVAIL, the README's admit-during-outages stack would let a
//! wrong code in. Each case runs the libpam transaction in a child process
//! (this binary, re-executed) whose real uid is `nobody` and effective uid
//! root, as under su, and stops it while its request is in flight.

mod common;
mod reexec;

use common::*;
use pam_twilio_2fa::lab::Lab;
use pam_twilio_2fa::pam_client::{code_name, PAM_AUTHINFO_UNAVAIL, PAM_AUTH_ERR};
use pam_twilio_2fa::simulator::{Fault, SimConfig};
use reexec::{ChildLogin, Ended};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const NOBODY: u32 = 65534;
/// Twilio answers after this long: well inside `http_timeout`, so only the
/// stop can make the request time out.
const ANSWER_DELAY: Duration = Duration::from_millis(1000);
const HTTP_TIMEOUT: &str = "http_timeout = 2\n";
/// Longer than `http_timeout`.
const STOPPED_FOR: Duration = Duration::from_secs(4);

/// The README's stack for sites that admit logins while Twilio is down.
const ADMIT_DURING_OUTAGES: &str = "auth [success=done authinfo_unavail=ignore default=die] MODULE\nauth required pam_permit.so\naccount required pam_permit.so\n";

/// Not a test of its own: the child side of the tests below (a no-op
/// unless they re-executed this binary to run it).
#[test]
#[ignore = "the child process of the other tests in this file"]
fn child_login() {
    if let Some(req) = reexec::requested() {
        req.run();
    }
}

/// A setup whose simulator writes each code to an outbox the child reads;
/// the outbox's folder lives as long as the returned `Lab`.
fn setup(stack: Option<&str>) -> (Setup, Lab, PathBuf) {
    let (s, dir, outbox) = Setup::with_outbox(
        SimConfig::default(),
        &format!("allowed_methods = [\"sms\"]\n{HTTP_TIMEOUT}"),
    );
    if let Some(text) = stack {
        s.stack(text);
    }
    (s, dir, outbox)
}

/// Runs the login in a child as `nobody` (real uid) and, once the request
/// at `path_suffix` has reached Twilio, stops the child for longer than
/// `http_timeout`; `nobody` is shown to be allowed to signal it.
fn stopped_login(s: &Setup, outbox: &Path, path_suffix: &str) -> Ended {
    let login = ChildLogin {
        confdir: &s.lab.confdir,
        service: SERVICE,
        user: USER,
        outbox,
        right_code: false,
        ruid: Some(NOBODY),
    };
    let kid = reexec::spawn(&[], "child_login", &login, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.requests_to(path_suffix).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the child's request to {path_suffix} never came"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    reexec::signal(kid.pid, libc::SIGSTOP).expect("SIGSTOP");
    // The caller (uid nobody) may signal the process: that is the point.
    // (The stop itself is sent from here, at once, so it surely lands
    // while the request waits.)
    kill_as_nobody("-0", kid.pid);
    std::thread::sleep(STOPPED_FOR);
    kill_as_nobody("-CONT", kid.pid);
    kid.finish(60)
}

fn kill_as_nobody(signal: &str, pid: i32) {
    use std::os::unix::process::CommandExt;
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .uid(NOBODY)
        .gid(NOBODY)
        .status()
        .expect("kill");
    assert!(status.success(), "nobody could not send {signal}");
}

#[track_caller]
fn assert_denied(s: &Setup, end: &Ended) {
    let rc = end
        .pam_rc()
        .unwrap_or_else(|| panic!("no PAM code: {end:#?}"));
    assert_eq!(
        code_name(rc),
        code_name(PAM_AUTH_ERR),
        "a stopped login must be denied, not an outage; child: {end:#?}\nlog:\n{}",
        s.log()
    );
    // The user is told the same as in an outage; the admin is told why.
    assert!(
        end.shown()
            .iter()
            .any(|m| m.contains("Two-factor authentication is unavailable right now.")),
        "{end:#?}"
    );
    let log = s.log();
    assert!(
        log.contains("Twilio unreachable:")
            && log.contains(&format!(
                "denying with PAM_AUTH_ERR, not PAM_AUTHINFO_UNAVAIL, because the calling user (uid {NOBODY}) can stop or limit this process"
            )),
        "{log}"
    );
}

#[test]
fn a_login_stopped_during_the_send_is_denied_not_unavailable() {
    let (s, _dir, outbox) = setup(None);
    s.sim.inject(Fault::Delay(ANSWER_DELAY), 1);
    let end = stopped_login(&s, &outbox, "/Verifications");
    assert_denied(&s, &end);
}

#[test]
fn a_login_stopped_during_the_check_of_a_wrong_code_is_denied() {
    // The stack that admits logins during outages: an AUTHINFO_UNAVAIL here
    // would let the wrong code in.
    let (s, _dir, outbox) = setup(Some(ADMIT_DURING_OUTAGES));
    s.sim.inject(Fault::Delay(Duration::ZERO), 1);
    s.sim.inject(Fault::Delay(ANSWER_DELAY), 1);
    let end = stopped_login(&s, &outbox, "/VerificationCheck");
    assert_denied(&s, &end);
    assert_eq!(s.checks().len(), 1, "the wrong code was checked once");
}

#[test]
fn a_real_outage_under_sshd_is_still_authinfo_unavail() {
    // Real uid 0 (sshd, login): nobody but root can stop the process, so a
    // timeout is Twilio's, and stays PAM_AUTHINFO_UNAVAIL.
    let (s, _dir, outbox) = setup(None);
    s.sim.inject(Fault::Delay(Duration::from_secs(5)), 1);
    let login = ChildLogin {
        confdir: &s.lab.confdir,
        service: SERVICE,
        user: USER,
        outbox: &outbox,
        right_code: false,
        ruid: None,
    };
    let end = reexec::spawn(&[], "child_login", &login, &[]).finish(60);
    let rc = end
        .pam_rc()
        .unwrap_or_else(|| panic!("no PAM code: {end:#?}"));
    assert_eq!(code_name(rc), code_name(PAM_AUTHINFO_UNAVAIL), "{end:#?}");
    let log = s.log();
    assert!(log.contains("cannot send a code:"), "{log}");
    assert!(!log.contains("Twilio unreachable:"), "{log}");
}
