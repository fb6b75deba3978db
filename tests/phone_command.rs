//! The `[phones] command` source through the real libpam: the program gets
//! none of the host's descriptors, one deadline covers the whole exchange,
//! its whole process group is killed, it is reaped even in a host that
//! ignores SIGCHLD, and a program others could replace is never run.

mod common;

use common::*;
use pam_twilio_2fa::pam_client::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A program for the command source, root-owned 0755 (the lab's folder is
/// root's, 0700, under /run).
fn write_program(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Setup whose only phone source is `program --user %u`.
fn command_setup(s: &Setup, program: &Path) {
    s.rewrite_config(
        &format!(
            "allowed_methods = [\"sms\"]\n[phones]\ncommand = \"{} --user %u\"\n",
            program.display()
        ),
        |t| t,
    );
}

/// A `sleep` whose name carries a marker unique to this test, so /proc
/// shows whether any of it is still running.
fn marked_sleep(s: &Setup, tag: &str) -> (PathBuf, String) {
    let marker = format!("t2fa-hold-{tag}-{}", std::process::id());
    let path = s.lab.dir.join(&marker);
    std::os::unix::fs::symlink("/bin/sleep", &path).unwrap();
    (path, marker)
}

/// Processes whose command line mentions `marker`.
fn running(marker: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline
                .contains(marker)
                .then(|| format!("{}: {cmdline}", e.file_name().to_string_lossy()))
        })
        .collect()
}

/// No process of `marker` left, waiting at most 5 s for SIGKILL to land.
#[track_caller]
fn assert_none_left(marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !running(marker).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = running(marker);
    for p in &left {
        // Do not leave them behind either way.
        if let Some(pid) = p.split(':').next().and_then(|p| p.parse::<i32>().ok()) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    assert!(left.is_empty(), "left running: {left:?}");
}

#[test]
fn the_program_sees_none_of_the_hosts_descriptors() {
    let s = Setup::sms("");
    // A descriptor of the host's without close-on-exec, as a C host may have.
    let secret = s.lab.dir.join("host-private-file");
    std::fs::write(&secret, "host").unwrap();
    let c = std::ffi::CString::new(secret.to_str().unwrap()).unwrap();
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY) };
    assert!(fd > 2);
    // The shell lists its own descriptors: its stdio, the script it reads,
    // and whatever it inherited.
    let seen = s.lab.dir.join("seen");
    let program = s.lab.dir.join("phone-of");
    write_program(
        &program,
        &format!(
            "seen=$(for f in /proc/$$/fd/*; do echo \"${{f##*/}} $(readlink $f)\"; done)\nprintf '%s\\n' \"$seen\" > {}\necho '(201) 555-0199'",
            seen.display()
        ),
    );
    command_setup(&s, &program);
    let r = s.login(vec![Answer::Code]);
    unsafe { libc::close(fd) };
    r.assert_rc(PAM_SUCCESS);
    let seen = std::fs::read_to_string(&seen).unwrap();
    assert!(
        seen.lines().any(|l| l.starts_with("1 pipe:")),
        "stdout is the pipe: {seen}"
    );
    assert!(
        !seen.contains(secret.to_str().unwrap()),
        "the host's fd {fd} reached the program:\n{seen}"
    );
}

#[test]
fn a_background_process_holding_stdout_does_not_hold_the_login() {
    let s = Setup::sms("");
    let (sleep, marker) = marked_sleep(&s, "bg");
    let program = s.lab.dir.join("phone-of");
    write_program(
        &program,
        &format!("{} 60 &\necho '(201) 555-0199'", sleep.display()),
    );
    command_setup(&s, &program);
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(
        s.sends()[0].form.get("To").map(String::as_str),
        Some("+12015550199")
    );
    // The deadline is 5 s; the sleep would hold the output for 60.
    assert!(r.elapsed < Duration::from_secs(20), "{:?}", r.elapsed);
    assert_none_left(&marker);
}

#[test]
fn a_program_that_never_ends_is_killed_with_its_whole_group() {
    let s = Setup::sms("");
    let (sleep, marker) = marked_sleep(&s, "hang");
    let program = s.lab.dir.join("phone-of");
    // A background child, and a foreground one the shell waits for.
    write_program(
        &program,
        &format!("{sleep} 60 &\n{sleep} 61", sleep = sleep.display()),
    );
    command_setup(&s, &program);
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_SERVICE_ERR);
    assert!(r.elapsed < Duration::from_secs(20), "{:?}", r.elapsed);
    assert!(s.log().contains("timed out after 5 s"), "{}", s.log());
    assert!(s.sim.received().is_empty());
    assert_none_left(&marker);
}

#[test]
fn command_timeout_sets_the_deadline() {
    let s = Setup::sms("");
    let (sleep, marker) = marked_sleep(&s, "short");
    let program = s.lab.dir.join("phone-of");
    write_program(&program, &format!("{} 60", sleep.display()));
    s.rewrite_config(
        &format!(
            "allowed_methods = [\"sms\"]\n[phones]\ncommand = \"{} %u\"\ncommand_timeout = 1\n",
            program.display()
        ),
        |t| t,
    );
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_SERVICE_ERR);
    assert!(s.log().contains("timed out after 1 s"), "{}", s.log());
    assert!(r.elapsed < Duration::from_secs(4), "{:?}", r.elapsed);
    assert_none_left(&marker);
}

/// Set by the test below when it runs this binary again for one test.
const SIGCHLD_CHILD: &str = "T2FA_TEST_SIGCHLD_IGNORED";

#[test]
fn a_host_that_ignores_sigchld_still_gets_the_number() {
    if std::env::var_os(SIGCHLD_CHILD).is_some() {
        return in_a_host_that_ignores_sigchld();
    }
    // In a process of its own: ignoring SIGCHLD is process-wide.
    let exe = std::env::current_exe().unwrap();
    let (ok, out, err) = run_with_deadline(
        std::process::Command::new(exe)
            .args([
                "--exact",
                "a_host_that_ignores_sigchld_still_gets_the_number",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(SIGCHLD_CHILD, "1"),
        60,
    );
    assert!(ok && out.contains("1 passed"), "{out}\n{err}");
}

/// Logins on four threads at once, each looking its number up while the
/// others do: the first lookup saves the host's disposition, the last one
/// puts it back.
fn in_a_host_that_ignores_sigchld() {
    let disposition = || {
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        unsafe { libc::sigaction(libc::SIGCHLD, std::ptr::null(), &mut old) };
        old.sa_sigaction
    };
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    let s = Setup::sms("");
    let program = s.lab.dir.join("phone-of");
    let users = [
        ("root", "0191"),
        ("daemon", "0192"),
        ("bin", "0193"),
        ("sys", "0194"),
    ];
    let cases: String = users
        .iter()
        .map(|(u, n)| format!("{u}) echo '+1201555{n}' ;; "))
        .collect();
    write_program(&program, &format!("sleep 0.3\ncase \"$2\" in {cases}esac"));
    command_setup(&s, &program);
    let start = std::sync::Barrier::new(users.len());
    let codes: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = users
            .iter()
            .map(|(user, n)| {
                let (s, start) = (&s, &start);
                let phone = format!("+1201555{n}");
                scope.spawn(move || {
                    start.wait();
                    let r = s.login_as(user, None, 0, vec![Answer::CodeTo(phone)]);
                    code_name(r.rc).to_string()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    assert_eq!(
        disposition(),
        libc::SIG_IGN,
        "the host's SIGCHLD disposition"
    );
    assert!(
        codes.iter().all(|c| c == "PAM_SUCCESS"),
        "{codes:?}\n{}",
        s.log()
    );
}

#[test]
fn a_program_others_could_replace_is_not_run() {
    let s = Setup::sms("");
    let ran = s.lab.dir.join("ran");
    let body = format!("touch {}\necho '(201) 555-0199'", ran.display());
    let refused = |program: &Path, why: &str| {
        command_setup(&s, program);
        let r = s.login(vec![Answer::Code]);
        r.assert_rc(PAM_SERVICE_ERR);
        assert!(!ran.exists(), "{why}: the program ran");
        let log = s.log();
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains("phones.command"))
            .unwrap_or_else(|| panic!("{why}: no log line:\n{log}"));
        assert!(line.contains(why), "{why}: {line}");
        assert!(s.sim.received().is_empty(), "{why}: something was sent");
        // check-config says so before any login fails.
        let (ok, _, err) = twilio_2fa(&["check-config", s.lab.config.to_str().unwrap()]);
        assert!(
            !ok && err.contains("phones.command") && err.contains(why),
            "{err}"
        );
    };

    let program = s.lab.dir.join("phone-of");
    write_program(&program, &body);
    std::os::unix::fs::chown(&program, Some(65534), None).unwrap();
    refused(&program, "owned by uid 65534");

    std::os::unix::fs::chown(&program, Some(0), None).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o775)).unwrap();
    refused(&program, "writable by group or others (mode 0775)");

    let open_dir = s.lab.dir.join("open");
    std::fs::create_dir(&open_dir).unwrap();
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let inside = open_dir.join("phone-of");
    write_program(&inside, &body);
    refused(
        &inside,
        &format!("parent {} is writable", open_dir.display()),
    );

    // The same program, safely placed, runs.
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    command_setup(&s, &program);
    s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);
    assert!(ran.exists());
}
