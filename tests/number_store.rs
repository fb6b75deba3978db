//! Registration and change of a number cannot clobber or tear: a login
//! stores its new number under the user's lock and only if the number on
//! file is still the one it found (an administrator's `twilio-2fa user set`
//! meanwhile wins); every writer has its own temporary file; an empty number
//! file is damage, not "no number". Through the real libpam.

mod common;

use common::*;
use pam_twilio_2fa::pam_client::*;
use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};

const NUMBER_CHANGED: &str =
    "Your phone number was changed by an administrator while you were logging in. Log in again.";

/// Users every Debian/Ubuntu system has, with no number on file.
const NEWBIE: &str = "daemon";
const OTHER: &str = "bin";
const NEW: &str = "(201) 555-0177";
const ADMIN: &str = "+12015550199";
const REGISTER: &str = "allow_register = true\nallowed_methods = [\"sms\"]\n";

/// `twilio-2fa user set USER NUMBER` for this setup, as an argv.
fn admin_sets(s: &Setup, user: &str, number: &str) -> Vec<String> {
    [
        BIN,
        "user",
        "set",
        user,
        number,
        "--no-lookup",
        "--config",
        s.lab.config.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

/// The names in the phones directory (dot-files too).
fn phone_files(s: &Setup) -> BTreeSet<String> {
    std::fs::read_dir(&s.lab.phones)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

fn number_of(s: &Setup, user: &str) -> String {
    std::fs::read_to_string(s.lab.phones.join(user)).unwrap()
}

#[test]
fn an_admin_set_during_a_registration_wins() {
    let s = Setup::new(REGISTER);
    // The number prompt is answered only after the administrator stored one.
    let r = s.login_as(
        NEWBIE,
        None,
        0,
        vec![
            Answer::AfterCommand(admin_sets(&s, NEWBIE, ADMIN), Box::new(text(NEW))),
            Answer::Code,
        ],
    );
    r.assert_rc(PAM_AUTH_ERR);
    assert_eq!(r.errors(), vec![NUMBER_CHANGED], "{:?}", r.shown);
    assert_eq!(number_of(&s, NEWBIE), format!("{ADMIN}\n"));
    let log = s.log();
    assert!(log.contains("event=phone_set user=daemon"), "{log}");
    assert!(
        log.contains("event=verification_failed user=daemon reason=number_changed_during_login"),
        "{log}"
    );
    assert!(!log.contains("event=registered"), "{log}");
    assert_eq!(
        phone_files(&s),
        BTreeSet::from([USER.into(), NEWBIE.into()])
    );
}

#[test]
fn an_admin_set_during_a_change_wins() {
    let s = Setup::new("allow_change = true\nallowed_methods = [\"sms\"]\n");
    let r = s.login(vec![
        text("change"),
        Answer::Code,
        Answer::AfterCommand(admin_sets(&s, USER, ADMIN), Box::new(text(NEW))),
        Answer::Code,
    ]);
    r.assert_rc(PAM_AUTH_ERR);
    assert_eq!(r.errors(), vec![NUMBER_CHANGED], "{:?}", r.shown);
    assert_eq!(number_of(&s, USER), format!("{ADMIN}\n"));
    assert!(!s.log().contains("event=phone_changed"), "{}", s.log());
}

#[test]
fn concurrent_registrations_leave_one_whole_number_per_user_and_no_stray_file() {
    let s = Setup::new(REGISTER);
    // Two logins for each of two users, each with its own number.
    let logins: Vec<(&str, String)> = (0..4)
        .map(|i| {
            let user = if i % 2 == 0 { NEWBIE } else { OTHER };
            (user, format!("+1201555{:04}", 1300 + i))
        })
        .collect();
    let start = std::sync::Barrier::new(logins.len());
    let rcs: Vec<i32> = std::thread::scope(|scope| {
        let workers: Vec<_> = logins
            .iter()
            .map(|(user, number)| {
                let (s, start) = (&s, &start);
                scope.spawn(move || {
                    start.wait();
                    s.login_as(
                        user,
                        None,
                        0,
                        vec![text(number), Answer::CodeTo(number.clone())],
                    )
                    .rc
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    for user in [NEWBIE, OTHER] {
        let won: Vec<&String> = logins
            .iter()
            .zip(&rcs)
            .filter(|((u, _), rc)| *u == user && **rc == PAM_SUCCESS)
            .map(|((_, n), _)| n)
            .collect();
        assert_eq!(won.len(), 1, "{user}: {rcs:?}");
        // The file is the winner's number, whole, private.
        assert_eq!(number_of(&s, user), format!("{}\n", won[0]));
        let md = std::fs::metadata(s.lab.phones.join(user)).unwrap();
        assert_eq!(md.mode() & 0o777, 0o600);
    }
    assert_eq!(
        phone_files(&s),
        BTreeSet::from([USER.into(), NEWBIE.into(), OTHER.into()])
    );
}

#[test]
fn concurrent_admin_sets_leave_a_whole_number_and_no_stray_file() {
    let s = Setup::new("");
    let numbers: Vec<String> = (0..8).map(|i| format!("+1201555{:04}", 1400 + i)).collect();
    let children: Vec<_> = numbers
        .iter()
        .map(|n| {
            let argv = admin_sets(&s, NEWBIE, n);
            Command::new(&argv[0])
                .args(&argv[1..])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let on_file = number_of(&s, NEWBIE);
    assert!(
        numbers.iter().any(|n| on_file == format!("{n}\n")),
        "{on_file:?}"
    );
    assert_eq!(
        phone_files(&s),
        BTreeSet::from([USER.into(), NEWBIE.into()])
    );
}

#[test]
fn an_empty_number_file_is_a_service_error_not_a_registration() {
    let s = Setup::new(REGISTER);
    for text_on_file in ["", "\n  \n"] {
        let file = s.lab.phones.join(NEWBIE);
        std::fs::write(&file, text_on_file).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let r = s.login_as(NEWBIE, None, 0, vec![text(NEW), Answer::Code]);
        r.assert_rc(PAM_SERVICE_ERR);
        assert!(r.prompts().is_empty(), "{:?}", r.shown);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text_on_file);
    }
    assert!(s.sim.received().is_empty());
    assert!(s.log().contains("is empty"), "{}", s.log());
}

#[test]
fn check_config_says_registration_shadows_the_command_source() {
    let s = Setup::new("");
    s.rewrite_config("", |text| {
        text.replace(
            "[phones]\n",
            "allow_register = true\n[phones]\ncommand = \"/bin/true %u\"\n",
        )
    });
    let (ok, out, err) = twilio_2fa(&["check-config", s.lab.config.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        out.contains("note: allow_register is on with a [phones] command"),
        "{out}"
    );
    assert!(out.contains("shadows the command's number"), "{out}");
    assert!(out.contains("twilio-2fa user remove USER"), "{out}");
}
