//! `remember`: a remembered login stays with who and where it was proven.
//! Every origin names the PAM service; a local one (no PAM_RHOST) also the
//! calling user (real uid) and the terminal's session, since terminal names
//! are reused. A new or removed number ends every remembered login.
//!
//! The local cases run in a process of their own that starts a new session
//! (this test binary run again with `ROLE=host`): the test runner's own
//! session leader may be gone, and a login must see a live one. Logins by
//! another caller or from another session run in further processes
//! (`ROLE=login`), the way su (real uid the caller's, effective uid 0) does.

mod common;

use common::*;
use pam_twilio_2fa::pam_client::*;
use pam_twilio_2fa::state::{Remembered, StateDir, StateStore};
use std::process::Command;
use std::time::Duration;

const ROLE: &str = "T2FA_REMEMBER_ROLE";
const TTY: &str = "/dev/pts/7";
const OTHER_SERVICE: &str = "t2fa-other";
/// An ordinary caller: nobody, on Debian.
const CALLER: u32 = 65534;

/// Runs the test `name` again in a new process (a new session leader).
fn in_own_session(name: &str) {
    let exe = std::env::current_exe().unwrap();
    let (ok, out, err) = run_with_deadline(
        Command::new(exe)
            .args(["--exact", name, "--nocapture", "--test-threads=1"])
            .env(ROLE, "host"),
        120,
    );
    assert!(ok, "{name} in its own session failed:\n{out}\n{err}");
    assert!(out.contains("1 passed"), "{out}");
}

/// True in the process that `in_own_session` started: make it a session
/// leader, so that its logins and its children's have a live session.
fn is_host() -> bool {
    if std::env::var(ROLE).as_deref() != Ok("host") {
        return false;
    }
    assert!(unsafe { libc::setsid() } > 0, "setsid");
    true
}

/// How a login in a separate process differs from its parent.
#[derive(Clone, Copy)]
enum Caller {
    /// Same user, same session: the control that must still be remembered.
    Same,
    /// Real uid CALLER, effective uid 0, as under su.
    OtherUser,
    /// setsid() first: another session on the same terminal name.
    OtherSession,
}

/// A no-answer login of USER on TTY in a child process; its PAM code.
/// PAM_SUCCESS: it was remembered; PAM_CONV_ERR: it asked for a code.
fn login_in_child(s: &Setup, caller: Caller) -> i32 {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", "a_login_in_a_process_of_its_own", "--nocapture"])
        .env(ROLE, "login")
        .env("T2FA_CONFDIR", &s.lab.confdir)
        .env(
            "T2FA_CALLER",
            match caller {
                Caller::Same => "same",
                Caller::OtherUser => "user",
                Caller::OtherSession => "session",
            },
        );
    let (ok, out, err) = run_with_deadline(&mut cmd, 60);
    assert!(ok, "child login failed:\n{out}\n{err}");
    let rc = out
        .lines()
        .find_map(|l| l.strip_prefix("rc="))
        .unwrap_or_else(|| panic!("no rc in:\n{out}\n{err}"));
    rc.trim().parse().unwrap()
}

/// The child side of `login_in_child` (does nothing in a normal run).
#[test]
fn a_login_in_a_process_of_its_own() {
    if std::env::var(ROLE).as_deref() != Ok("login") {
        return;
    }
    match std::env::var("T2FA_CALLER").unwrap().as_str() {
        "user" => assert_eq!(unsafe { libc::setresuid(CALLER, 0, 0) }, 0),
        "session" => assert!(unsafe { libc::setsid() } > 0),
        _ => {}
    }
    let confdir = std::path::PathBuf::from(std::env::var("T2FA_CONFDIR").unwrap());
    let responder = Box::new(|style: Style, _: &str| -> Option<String> {
        (!matches!(style, Style::EchoOff | Style::EchoOn)).then(String::new)
    });
    let mut tx = Transaction::start(SERVICE, USER, Some(&confdir), responder).unwrap();
    tx.set_tty(TTY).unwrap();
    println!("rc={}", tx.authenticate(0));
}

/// USER proves the code once on TTY through SERVICE, in this session.
fn proven_locally() -> Setup {
    let s = Setup::sms("remember = 600\n");
    s.lab
        .write_service(OTHER_SERVICE, &s.module, "")
        .expect("service file");
    s.login_full(USER, None, Some(TTY), 0, vec![Answer::Code])
        .assert_rc(PAM_SUCCESS);
    // Control: the same caller, session, service and terminal is remembered,
    // here and from a child process.
    s.login_full(USER, None, Some(TTY), 0, vec![])
        .assert_rc(PAM_SUCCESS);
    assert_eq!(code_name(login_in_child(&s, Caller::Same)), "PAM_SUCCESS");
    s
}

#[test]
fn a_local_login_is_remembered_on_its_terminal_only() {
    if !is_host() {
        return in_own_session("a_local_login_is_remembered_on_its_terminal_only");
    }
    let s = proven_locally();
    s.login_full(USER, None, Some("/dev/pts/8"), 0, vec![])
        .assert_rc(PAM_CONV_ERR);
    // No rhost and no tty: nothing to remember by.
    s.login_full(USER, None, None, 0, vec![])
        .assert_rc(PAM_CONV_ERR);
}

/// `remember` set only by a `[[policy]]` block works for local logins too:
/// the terminal session is read whenever any block may remember.
#[test]
fn a_policy_that_turns_remember_on_remembers_local_logins() {
    if !is_host() {
        return in_own_session("a_policy_that_turns_remember_on_remembers_local_logins");
    }
    let s = Setup::sms(&format!(
        "[[policy]]\nusers = [\"{USER}\"]\nremember = 600\n"
    ));
    s.login_full(USER, None, Some(TTY), 0, vec![Answer::Code])
        .assert_rc(PAM_SUCCESS);
    s.login_full(USER, None, Some(TTY), 0, vec![])
        .assert_rc(PAM_SUCCESS);
    assert_eq!(s.sends().len(), 1, "remembered: nothing sent");
}

#[test]
fn a_local_login_is_not_remembered_for_another_service() {
    if !is_host() {
        return in_own_session("a_local_login_is_not_remembered_for_another_service");
    }
    let s = proven_locally();
    let r = s.login_service(OTHER_SERVICE, USER, None, Some(TTY), 0, vec![]);
    r.assert_rc(PAM_CONV_ERR);
    assert!(r.prompts()[0].contains("Enter code"), "{:?}", r.shown);
}

#[test]
fn a_local_login_is_not_remembered_for_another_caller() {
    if !is_host() {
        return in_own_session("a_local_login_is_not_remembered_for_another_caller");
    }
    let s = proven_locally();
    // Another local user on the same terminal name who knows root's password.
    assert_eq!(
        code_name(login_in_child(&s, Caller::OtherUser)),
        "PAM_CONV_ERR"
    );
    assert_eq!(code_name(login_in_child(&s, Caller::Same)), "PAM_SUCCESS");
}

#[test]
fn a_local_login_is_not_remembered_in_another_session() {
    if !is_host() {
        return in_own_session("a_local_login_is_not_remembered_in_another_session");
    }
    let s = proven_locally();
    assert_eq!(
        code_name(login_in_child(&s, Caller::OtherSession)),
        "PAM_CONV_ERR"
    );
}

#[test]
fn a_remote_login_is_not_remembered_for_another_service() {
    let s = Setup::sms("remember = 600\n");
    s.lab.write_service(OTHER_SERVICE, &s.module, "").unwrap();
    let host = Some("192.0.2.1");
    s.login_as(USER, host, 0, vec![Answer::Code])
        .assert_rc(PAM_SUCCESS);
    s.login_as(USER, host, 0, vec![]).assert_rc(PAM_SUCCESS);
    s.login_service(OTHER_SERVICE, USER, host, None, 0, vec![])
        .assert_rc(PAM_CONV_ERR);
}

#[test]
fn entries_in_the_old_form_never_match() {
    let s = Setup::sms("remember = 600\n");
    s.login_as(USER, Some("192.0.2.9"), 0, vec![Answer::Code])
        .assert_rc(PAM_SUCCESS);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let dir = StateDir::new(s.lab.state_dir.clone(), Duration::from_secs(5));
    dir.update(USER, &mut |st| {
        st.remembered = ["rhost:192.0.2.1", "tty:/dev/pts/7"]
            .iter()
            .map(|o| Remembered {
                origin: o.to_string(),
                verified_at: now,
            })
            .collect();
    })
    .unwrap();
    s.login_as(USER, Some("192.0.2.1"), 0, vec![])
        .assert_rc(PAM_CONV_ERR);
    s.login_full(USER, None, Some("/dev/pts/7"), 0, vec![])
        .assert_rc(PAM_CONV_ERR);
}

const HOST_A: Option<&str> = Some("192.0.2.1");

/// USER is remembered from HOST_A.
fn remembered_from_a(extra: &str) -> Setup {
    let s = Setup::sms(&format!("remember = 600\n{extra}"));
    s.login_as(USER, HOST_A, 0, vec![Answer::Code])
        .assert_rc(PAM_SUCCESS);
    assert_eq!(state_of(&s, USER).remembered.len(), 1);
    s
}

#[test]
fn user_set_ends_remembered_logins() {
    let s = remembered_from_a("");
    let (ok, _, err) = s.cli(&["user", "set", USER, "+12015550123", "--no-lookup"]);
    assert!(ok, "{err}");
    assert!(state_of(&s, USER).remembered.is_empty());
    assert!(
        s.log()
            .contains("event=remembered_ended user=root count=1 reason=phone_set"),
        "{}",
        s.log()
    );
    s.login_as(USER, HOST_A, 0, vec![]).assert_rc(PAM_CONV_ERR);
}

#[test]
fn user_remove_ends_remembered_logins() {
    let s = remembered_from_a("");
    let (ok, _, err) = s.cli(&["user", "remove", USER]);
    assert!(ok, "{err}");
    assert!(state_of(&s, USER).remembered.is_empty());
    assert!(
        s.log()
            .contains("event=remembered_ended user=root count=1 reason=phone_removed"),
        "{}",
        s.log()
    );
}

#[test]
fn a_change_of_number_at_login_ends_remembered_logins() {
    let s = remembered_from_a("allow_change = true\n");
    let r = s.login_as(
        USER,
        Some("192.0.2.2"),
        0,
        vec![
            text("c"),
            Answer::Code,
            text("(201) 555-0188"),
            Answer::Code,
        ],
    );
    r.assert_rc(PAM_SUCCESS);
    assert!(state_of(&s, USER).remembered.is_empty());
    assert!(
        s.log()
            .contains("event=remembered_ended user=root count=1 reason=phone_changed"),
        "{}",
        s.log()
    );
    s.login_as(USER, HOST_A, 0, vec![]).assert_rc(PAM_CONV_ERR);
}

#[test]
fn a_registration_ends_remembered_logins() {
    let s = remembered_from_a("allow_register = true\n");
    // The number went away by hand; the user registers a new one elsewhere.
    std::fs::remove_file(s.lab.phones.join(USER)).unwrap();
    s.login_as(
        USER,
        Some("192.0.2.2"),
        0,
        vec![text("(201) 555-0188"), Answer::Code],
    )
    .assert_rc(PAM_SUCCESS);
    assert!(state_of(&s, USER).remembered.is_empty());
    s.login_as(USER, HOST_A, 0, vec![]).assert_rc(PAM_CONV_ERR);
}

/// A login whose session cannot be told (its leader has gone) is neither
/// remembered nor matched: the test runs again as a session leader that
/// starts the login process and exits at once.
#[test]
fn a_login_whose_session_leader_has_gone_is_not_remembered() {
    const NAME: &str = "a_login_whose_session_leader_has_gone_is_not_remembered";
    let exe = std::env::current_exe().unwrap();
    match std::env::var(ROLE).as_deref() {
        Err(_) => {
            // Reads until the login process, which inherits the pipe, ends.
            let (ok, out, err) = run_with_deadline(
                Command::new(exe)
                    .args(["--exact", NAME, "--nocapture"])
                    .env(ROLE, "leader"),
                120,
            );
            assert!(ok && out.contains("orphan-ok"), "{out}\n{err}");
        }
        Ok("leader") => {
            assert!(unsafe { libc::setsid() } > 0, "setsid");
            // It must outlive this process (then init reaps it).
            #[allow(clippy::zombie_processes)]
            let _orphan = Command::new(exe)
                .args(["--exact", NAME, "--nocapture"])
                .env(ROLE, "orphan")
                .env("T2FA_LEADER", std::process::id().to_string())
                .spawn()
                .unwrap();
        }
        Ok("orphan") => {
            let leader = std::env::var("T2FA_LEADER").unwrap();
            let gone = (0..1000).any(|_| {
                std::thread::sleep(Duration::from_millis(20));
                !std::path::Path::new("/proc").join(&leader).exists()
            });
            assert!(gone, "session leader {leader} still there");
            let s = Setup::sms("remember = 600\n");
            s.login_full(USER, None, Some(TTY), 0, vec![Answer::Code])
                .assert_rc(PAM_SUCCESS);
            assert!(state_of(&s, USER).remembered.is_empty());
            s.login_full(USER, None, Some(TTY), 0, vec![])
                .assert_rc(PAM_CONV_ERR);
            println!("orphan-ok");
        }
        Ok(_) => {}
    }
}
