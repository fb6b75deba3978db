//! Files the module trusts are checked as opened, and so is every directory
//! above them, through the real libpam: the config, a secret file,
//! users.toml, the phones directory and the event log.

mod common;

use common::*;
use pam_twilio_2fa::pam_client::*;
use pam_twilio_2fa::simulator::DEFAULT_AUTH_TOKEN;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A new directory in the lab with `mode`.
fn dir(s: &Setup, name: &str, mode: u32) -> PathBuf {
    let d = s.lab.dir.join(name);
    std::fs::create_dir(&d).unwrap();
    chmod(&d, mode);
    d
}

/// The test service, reading its config from `config`.
fn use_config(s: &Setup, config: &Path) {
    std::fs::write(
        s.lab.confdir.join(SERVICE),
        format!(
            "auth required {} config={}\n",
            s.module.display(),
            config.display()
        ),
    )
    .unwrap();
}

#[track_caller]
fn assert_refused(s: &Setup, why: &str) {
    let before = s.sim.received().len();
    let r = s.login(vec![Answer::Code]);
    assert_eq!(code_name(r.rc), "PAM_SERVICE_ERR", "{why}: {:?}", r.shown);
    assert_eq!(s.sim.received().len(), before, "{why}: something was sent");
}

/// `twilio-2fa check-config PATH` fails and says `what`.
#[track_caller]
fn check_config_says(config: &Path, what: &str) {
    let (ok, out, err) = twilio_2fa(&["check-config", config.to_str().unwrap()]);
    assert!(!ok && err.contains(what), "{out}\n{err}");
}

#[test]
fn a_config_in_a_directory_others_may_write_is_refused() {
    let s = Setup::sms("");
    let etc = dir(&s, "etc", 0o755);
    let config = etc.join("config.toml");
    std::fs::copy(&s.lab.config, &config).unwrap();
    use_config(&s, &config);
    s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);
    for mode in [0o777, 0o770, 0o1777, 0o775] {
        chmod(&etc, mode);
        assert_refused(&s, &format!("mode {mode:o}"));
        check_config_says(
            &config,
            &format!(
                "parent {} is writable by a user other than root",
                etc.display()
            ),
        );
    }
    chmod(&etc, 0o755);
    // A safe directory reached through a symlink others could change.
    let open = dir(&s, "open", 0o777);
    let link = open.join("etc");
    std::os::unix::fs::symlink(&etc, &link).unwrap();
    use_config(&s, &link.join("config.toml"));
    assert_refused(&s, "symlinked directory");
    check_config_says(&link.join("config.toml"), "parent");
}

#[test]
fn a_config_symlink_is_refused() {
    let s = Setup::sms("");
    let link = s.lab.dir.join("link.toml");
    std::os::unix::fs::symlink(&s.lab.config, &link).unwrap();
    use_config(&s, &link);
    assert_refused(&s, "config symlink");
    check_config_says(&link, "symbolic link");
}

#[test]
fn a_secret_file_in_a_directory_others_may_write_is_refused() {
    let s = Setup::sms("");
    let secrets = dir(&s, "secrets", 0o700);
    let token = secrets.join("token");
    s.lab.write_private(&token, DEFAULT_AUTH_TOKEN).unwrap();
    s.rewrite_config("allowed_methods = [\"sms\"]\n", |t| {
        t.replace(
            &format!("auth_token = \"{DEFAULT_AUTH_TOKEN}\""),
            &format!("auth_token_file = \"{}\"", token.display()),
        )
    });
    s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);
    chmod(&secrets, 0o777);
    assert_refused(&s, "token in a world-writable directory");
    check_config_says(&s.lab.config, "auth_token_file");
    check_config_says(&s.lab.config, "parent");
}

#[test]
fn users_toml_in_a_directory_others_may_write_is_refused() {
    let s = Setup::sms("");
    let open = dir(&s, "open", 0o755);
    let users = open.join("users.toml");
    s.lab
        .write_private(&users, &format!("[users]\nroot = \"{PHONE}\"\n"))
        .unwrap();
    s.rewrite_config(
        &format!(
            "allowed_methods = [\"sms\"]\n[phones]\nfile = \"{}\"\n",
            users.display()
        ),
        |t| t,
    );
    s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);
    chmod(&open, 0o777);
    assert_refused(&s, "users.toml in a world-writable directory");
    assert!(s.log().contains("phones.file"), "{}", s.log());
    assert!(s.log().contains("parent"), "{}", s.log());
    check_config_says(&s.lab.config, "phones.file");
}

#[test]
fn a_phones_directory_with_a_writable_parent_is_refused() {
    let s = Setup::sms("");
    let open = dir(&s, "open", 0o777);
    let phones = dir(&s, "open/phones", 0o700);
    s.lab
        .write_private(&phones.join(USER), &format!("{PHONE}\n"))
        .unwrap();
    let use_dir = |d: &Path| {
        s.rewrite_config(
            &format!(
                "allowed_methods = [\"sms\"]\n[phones]\ndirectory = \"{}\"\n",
                d.display()
            ),
            |t| t,
        )
    };
    use_dir(&phones);
    assert_refused(&s, "phones directory in a world-writable directory");
    check_config_says(&s.lab.config, "phones.directory");
    // The lab's own phones directory is safe; reached through a symlink
    // in a directory others may write, it is not.
    let link = open.join("lab");
    std::os::unix::fs::symlink(&s.lab.dir, &link).unwrap();
    use_dir(&link.join("phones"));
    assert_refused(&s, "phones directory through a replaceable symlink");
    assert!(s.log().contains("phones.directory"), "{}", s.log());
    use_dir(&s.lab.phones);
    s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);
}

/// Runs one login of a fresh setup, prepared by `prepare`, on a thread:
/// fails the test instead of hanging it if the login never ends.
fn login_with_watchdog(
    prepare: impl FnOnce(&Setup) + Send + 'static,
    check: impl FnOnce(&Setup, &LoginResult) + Send + 'static,
) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let s = Setup::sms("");
        prepare(&s);
        let r = s.login(vec![Answer::Code]);
        check(&s, &r);
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(()) => {}
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("the login did not end within 60 s")
        }
        // The thread panicked: its assertion message is already printed.
        Err(e) => panic!("the login's checks failed: {e}"),
    }
}

#[test]
fn a_fifo_as_event_log_does_not_hold_the_login() {
    login_with_watchdog(
        |s| {
            let c = std::ffi::CString::new(s.lab.event_log.to_str().unwrap()).unwrap();
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        },
        |s, r| {
            r.assert_rc(PAM_SUCCESS);
            check_config_says(&s.lab.config, "event_log");
        },
    );
}

#[test]
fn an_event_log_others_could_replace_is_not_written() {
    login_with_watchdog(
        |s| {
            let open = dir(s, "open", 0o777);
            s.rewrite_config("allowed_methods = [\"sms\"]\n", |t| {
                t.replace(
                    s.lab.event_log.to_str().unwrap(),
                    open.join("events.log").to_str().unwrap(),
                )
            });
        },
        |s, r| {
            r.assert_rc(PAM_SUCCESS);
            let written = s.lab.dir.join("open/events.log");
            assert!(!written.exists(), "{}", s.log());
            check_config_says(&s.lab.config, "event_log");
        },
    );
    // A symlink in a safe directory is not followed either.
    login_with_watchdog(
        |s| {
            let target = s.lab.dir.join("elsewhere");
            s.lab.write_private(&target, "").unwrap();
            std::os::unix::fs::symlink(&target, &s.lab.event_log).unwrap();
        },
        |s, r| {
            r.assert_rc(PAM_SUCCESS);
            let target = s.lab.dir.join("elsewhere");
            assert_eq!(std::fs::read_to_string(target).unwrap(), "");
        },
    );
}
