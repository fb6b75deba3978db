//! The `twilio-2fa` command as an admin or a newcomer runs it.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn demo_runs_a_real_login_as_a_person_would() {
    let mut child = Command::new(BIN)
        .arg("demo")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The menu comes first: choose the text message.
    writeln!(stdin, "1").unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    let code = loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "demo ended early:\n{seen}"
        );
        seen.push_str(&line);
        if let Some(i) = line.find("verification code is: ") {
            break line[i + 22..].trim().to_string();
        }
    };
    assert!(seen.contains("Choose how to receive your code:"), "{seen}");
    assert!(seen.contains("Text message"), "{seen}");
    writeln!(stdin, "{code}").unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{seen}{rest}");
    assert!(
        rest.contains(
            "Code sent by text message to (XXX) XXX-2671. Enter code (r: new code, m: other method, c: change number): "
        ),
        "{rest}"
    );
    assert!(rest.contains("PAM returned PAM_SUCCESS"), "{rest}");
    assert!(rest.contains("event=verification_success"), "{rest}");
    assert!(
        !rest.contains(&code),
        "the code must not appear in the module's log lines:\n{rest}"
    );
}

#[test]
fn demo_with_a_wrong_code_is_refused() {
    let mut child = Command::new(BIN)
        .arg("demo")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        // Menu, then five wrong codes; the simulator's codes are random, so
        // "0000" (4 digits) can never be right.
        writeln!(stdin, "sms\n0000\n0000\n0000\n0000\n0000").unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let out = child.wait_with_output().unwrap();
    assert!(Instant::now() < deadline);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.contains("PAM returned PAM_MAXTRIES"), "{text}");
}

#[test]
fn check_config_summarises_a_good_file_without_secrets() {
    let s = Setup::sms("");
    let (ok, out, err) = twilio_2fa(&["check-config", s.lab.config.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains(": OK"), "{out}");
    assert!(out.contains("allowed_methods  sms (text message)"), "{out}");
    assert!(!out.contains("simulator-auth-token"), "{out}");
}

#[test]
fn check_config_names_the_bad_key_and_fails() {
    let s = Setup::sms("");
    s.rewrite_config("max_attempts = \"five\"\n", |t| t);
    let (ok, _, err) = twilio_2fa(&["check-config", s.lab.config.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("max_attempts: invalid type"), "{err}");

    let (ok, _, err) = twilio_2fa(&["check-config", "/nonexistent/config.toml"]);
    assert!(!ok);
    assert!(err.contains("/nonexistent/config.toml"), "{err}");
}

#[test]
fn unknown_command_fails_with_usage() {
    let (ok, _, err) = twilio_2fa(&["frobnicate"]);
    assert!(!ok);
    assert!(err.contains("usage:"), "{err}");
}

#[test]
fn simulator_command_refuses_non_loopback() {
    let (ok, _, err) = twilio_2fa(&["simulator", "--listen", "0.0.0.0:0"]);
    assert!(!ok);
    assert!(err.contains("loopback"), "{err}");
}

/// The README once suggested trusting ::1/128: every connection relayed
/// through the host (ssh -J, -L) then skips the second factor.
#[test]
fn check_config_warns_about_a_trusted_loopback_network() {
    let s = Setup::sms("trusted_networks = [\"10.0.0.0/8\", \"::1/128\"]\n");
    let (ok, out, err) = twilio_2fa(&["check-config", s.lab.config.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        out.contains("trusted_networks: ::1/128 holds a loopback address"),
        "{out}"
    );
    assert!(!out.contains("10.0.0.0/8 holds"), "{out}");
    // And the module does skip such a login: the warning is not idle talk.
    // (PAM_IGNORE from the only module of the test stack reads as PAM_PERM_DENIED.)
    let r = s.login_as(USER, Some("::1"), 0, vec![]);
    assert!(r.prompts().is_empty() && s.sends().is_empty(), "{r:?}");
    let events = s.lab.events();
    assert!(
        events.contains("event=verification_skipped") && events.contains("trusted_network:::1/128"),
        "{events}"
    );
}
