//! sudo end to end: a throw-away user whose sudo uses a private PAM service
//! (sudoers `pam_service=`) with the module after the password. Driven with
//! `sudo -S` without a terminal. Needs root and sudo.

mod common;

use common::*;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct SudoSetup {
    s: Setup,
    user: TestUser,
    _sudoers: TempFile,
    _pam: TempFile,
}

fn sudo_setup(tag: &str) -> SudoSetup {
    let user = TestUser::new(tag);
    let s = Setup::sms("");
    s.lab.set_phone(&user.name, PHONE).unwrap();
    let service = format!("t2fa-sudo-{tag}-{}", std::process::id());
    let module = format!("{} config={}", s.module.display(), s.lab.config.display());
    let pam = TempFile::write(
        PathBuf::from("/etc/pam.d").join(&service),
        &format!(
            "auth requisite pam_unix.so\nauth required {module}\naccount required pam_permit.so\nsession required pam_permit.so\n"
        ),
    );
    // sudoers.d ignores names with a dot; the file must be 0440.
    let sudoers = TempFile::write(
        PathBuf::from("/etc/sudoers.d").join(&service),
        &format!(
            "Defaults:{u} pam_service={service}\nDefaults:{u} !lecture, timestamp_timeout=0, passwd_tries=1\n{u} ALL=(root) /usr/bin/id\n",
            u = user.name
        ),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&sudoers.0, std::fs::Permissions::from_mode(0o440)).unwrap();
    assert!(Command::new("visudo")
        .args(["-c", "-q", "-f"])
        .arg(&sudoers.0)
        .status()
        .unwrap()
        .success());
    SudoSetup {
        s,
        user,
        _sudoers: sudoers,
        _pam: pam,
    }
}

/// `sudo -S -k /usr/bin/id -un` as the user: the password, then (once a code
/// was sent) `code(delivered)`. Returns (success, stdout, stderr).
fn sudo_id(t: &SudoSetup, password: &str, code: impl Fn(&str) -> String) -> (bool, String, String) {
    let mut child = Command::new("runuser")
        .args([
            "-u",
            &t.user.name,
            "--",
            "sudo",
            "-S",
            "-k",
            "/usr/bin/id",
            "-un",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{password}").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while t.s.sim.deliveries().is_empty() && Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(d) = t.s.sim.deliveries().last() {
        // A login that already failed has stopped reading: ignore EPIPE.
        let _ = writeln!(stdin, "{}", code(&d.code));
    }
    drop(stdin);
    outcome(child.wait_with_output().unwrap())
}

#[test]
fn sudo_runs_the_command_only_with_the_right_code() {
    let t = sudo_setup("u");
    let (ok, out, err) = sudo_id(&t, &t.user.password.clone(), |c| c.to_string());
    assert!(ok, "stderr: {err}\nlog: {}", t.s.log());
    assert_eq!(out.trim(), "root");
    assert!(
        err.contains("Code sent by text message to (XXX) XXX-2671. Enter code ("),
        "{err}"
    );
    assert!(t.s.log().contains("service=t2fa-sudo-u"), "{}", t.s.log());

    let (ok, out, err) = sudo_id(&t, &t.user.password.clone(), |_| "0000".into());
    assert!(!ok, "ran with a wrong code: {out}");
    assert!(!out.contains("root"));
    assert!(err.contains("That code was not correct."), "{err}");
}

#[test]
fn sudo_with_a_wrong_password_sends_nothing() {
    let t = sudo_setup("v");
    let (ok, out, _) = sudo_id(&t, "not-the-password", |c| c.to_string());
    assert!(!ok && !out.contains("root"));
    assert!(
        t.s.sim.received().is_empty(),
        "a code was sent after a wrong password"
    );
}
