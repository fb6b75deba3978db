//! The module runs inside long-lived hosts (sshd, sudo): it must leave no
//! file descriptor, signal handler, umask or working directory changed.
//! One test in its own binary, so no other test opens files meanwhile.

mod common;

use common::*;
use pam_twilio_2fa::pam_client::*;
use pam_twilio_2fa::simulator::Fault;
use std::os::unix::fs::PermissionsExt;

fn open_fds() -> Vec<String> {
    let mut fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some(format!(
                "{} -> {}",
                e.file_name().to_string_lossy(),
                target.display()
            ))
        })
        .collect();
    fds.sort();
    fds
}

/// The descriptors once the simulator has closed its end of the last
/// login's connections (it does so a moment after the module closes its
/// own): unchanged for 200 ms, waiting at most 2 s.
fn settled_fds() -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut last = open_fds();
    let mut same_since = std::time::Instant::now();
    while std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let now = open_fds();
        if now != last {
            last = now;
            same_since = std::time::Instant::now();
        } else if same_since.elapsed() >= std::time::Duration::from_millis(200) {
            break;
        }
    }
    last
}

fn signal_handlers() -> Vec<usize> {
    (1..32)
        .filter(|s| *s != libc::SIGKILL && *s != libc::SIGSTOP)
        .map(|s| {
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            unsafe { libc::sigaction(s, std::ptr::null(), &mut old) };
            old.sa_sigaction
        })
        .collect()
}

fn umask() -> libc::mode_t {
    let m = unsafe { libc::umask(0o022) };
    unsafe { libc::umask(m) };
    m
}

#[test]
fn logins_leave_no_fds_handlers_umask_or_cwd_behind() {
    let s = Setup::new("allow_register = true\nallow_change = true\nremember = 60\n");
    let script = s.lab.dir.join("phone-of");
    std::fs::write(&script, "#!/bin/sh\necho '(201) 555-0199'\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    // Warm up once: libpam and the simulator keep their own descriptors.
    s.login(vec![text("1"), Answer::Code])
        .assert_rc(PAM_SUCCESS);

    let (fds, handlers, mask, cwd) = (
        settled_fds(),
        signal_handlers(),
        umask(),
        std::env::current_dir().unwrap(),
    );
    // Success, wrong codes and lockout, an outage, a state write, a change
    // of number, a registration, the command source.
    s.login_as(USER, Some("192.0.2.1"), 0, vec![text("1"), Answer::Code])
        .assert_rc(PAM_SUCCESS);
    s.login_as(USER, Some("192.0.2.1"), 0, vec![])
        .assert_rc(PAM_SUCCESS);
    s.login_as(
        USER,
        None,
        0,
        vec![
            text("1"),
            text("c"),
            Answer::Code,
            text("(201) 555-0188"),
            Answer::Code,
        ],
    )
    .assert_rc(PAM_SUCCESS);
    s.login_as(
        "daemon",
        None,
        0,
        vec![text("(201) 555-0177"), text("1"), Answer::Code],
    )
    .assert_rc(PAM_SUCCESS);
    s.sim.inject(Fault::Status(503), 1);
    s.login_as(USER, None, 0, vec![text("1"), Answer::Code])
        .assert_rc(PAM_AUTHINFO_UNAVAIL);
    s.login_as(
        USER,
        None,
        0,
        vec![
            text("1"),
            Answer::WrongCode,
            Answer::WrongCode,
            Answer::WrongCode,
            Answer::WrongCode,
            Answer::WrongCode,
        ],
    )
    .assert_rc(PAM_MAXTRIES);
    s.rewrite_config(
        &format!(
            "allowed_methods = [\"sms\"]\n[phones]\ncommand = \"{} %u\"\n",
            script.display()
        ),
        |t| t,
    );
    s.login_as("bin", None, 0, vec![Answer::Code])
        .assert_rc(PAM_SUCCESS);

    // The in-process simulator closes its end of a keep-alive connection a
    // moment after the module closes its own; a real leak never goes away.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while open_fds() != fds && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        open_fds(),
        fds,
        "file descriptors leaked into the host process"
    );
    assert_eq!(signal_handlers(), handlers, "signal handlers changed");
    assert_eq!(umask(), mask, "umask changed");
    assert_eq!(
        std::env::current_dir().unwrap(),
        cwd,
        "working directory changed"
    );
}
