//! Registration and change of numbers, number validation with carrier
//! lookup, the command source, and `twilio-2fa user`, through the real
//! libpam and the simulator (whose Lookups answers line types the test sets).

mod common;

use common::*;
use pam_twilio_2fa::pam_client::*;
use pam_twilio_2fa::simulator::Fault;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use std::time::Duration;

/// A user every Debian/Ubuntu system has, with no number on file.
const NEWBIE: &str = "daemon";
const NEW: &str = "(201) 555-0177";
const NEW_E164: &str = "+12015550177";
const REGISTER: &str = "allow_register = true\nallowed_methods = [\"sms\"]\n";

fn lookups(s: &Setup) -> Vec<String> {
    s.sim
        .received()
        .into_iter()
        .filter(|r| r.path.starts_with("/v2/PhoneNumbers/"))
        .map(|r| r.path)
        .collect()
}

#[test]
fn registration_stores_the_number_only_after_the_code() {
    let s = Setup::new(REGISTER);
    let file = s.lab.phones.join(NEWBIE);
    let r = s.login_as(
        NEWBIE,
        None,
        0,
        vec![text(NEW), Answer::CodeIfAbsent(file.clone())],
    );
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(
        r.prompts(),
        vec![
            "Enter your mobile phone number for two-factor authentication: ",
            "Code sent by text message to (XXX) XXX-0177. Enter code (r: new code): ",
        ]
    );
    assert_eq!(r.of(Style::EchoOn).len(), 1, "the number is typed visibly");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        format!("{NEW_E164}\n")
    );
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
    assert_eq!(
        s.sends()[0].form.get("To").map(String::as_str),
        Some(NEW_E164)
    );
    assert_eq!(
        lookups(&s),
        vec![format!("/v2/PhoneNumbers/%2B{}", &NEW_E164[1..])]
    );
    let log = s.lab.events();
    assert!(
        log.contains("event=registered user=daemon to=+1******0177"),
        "{log}"
    );
    // The next login uses the stored number, with no lookup.
    s.login_as(NEWBIE, None, 0, vec![Answer::Code])
        .assert_rc(PAM_SUCCESS);
    assert_eq!(lookups(&s).len(), 1);
}

#[test]
fn registration_with_wrong_codes_stores_nothing() {
    let s = Setup::new(REGISTER);
    let r = s.login_as(
        NEWBIE,
        None,
        0,
        vec![
            text(NEW),
            Answer::WrongCode,
            Answer::WrongCode,
            Answer::WrongCode,
            Answer::WrongCode,
            Answer::WrongCode,
        ],
    );
    r.assert_rc(PAM_MAXTRIES);
    assert!(!s.lab.phones.join(NEWBIE).exists());
    assert!(!s.lab.events().contains("event=registered"));
}

#[test]
fn skipping_optional_registration_leaves_the_decision_to_the_stack() {
    let s = Setup::new(&format!("{REGISTER}register_optional = true\n"));
    // PAM_IGNORE: with a password module after it that passes (pam_permit
    // stands in) the login goes ahead; with one that fails (pam_deny) it does not.
    for (next, want) in [
        ("pam_permit.so", PAM_SUCCESS),
        ("pam_deny.so", PAM_AUTH_ERR),
    ] {
        std::fs::write(
            s.lab.confdir.join(SERVICE),
            format!(
                "auth required {} config={}\nauth required {next}\n",
                s.module.display(),
                s.lab.config.display()
            ),
        )
        .unwrap();
        let r = s.login_as(NEWBIE, None, 0, vec![text("skip")]);
        r.assert_rc(want);
        assert!(r.prompts()[0].contains("(or type skip)"));
    }
    assert!(s.sim.received().is_empty());
    assert!(s
        .lab
        .events()
        .contains("event=registration_skipped user=daemon"));
    assert!(!s.lab.phones.join(NEWBIE).exists());
}

#[test]
fn registration_off_by_default() {
    let s = Setup::new("allowed_methods = [\"sms\"]\n");
    let r = s.login_as(NEWBIE, None, 0, vec![text(NEW)]);
    r.assert_rc(PAM_AUTH_ERR);
    assert_eq!(
        r.errors(),
        vec!["No phone number is registered for two-factor authentication. Contact your administrator."]
    );
    assert!(r.prompts().is_empty());
}

#[test]
fn disallowed_country_is_explained_and_reasked() {
    let s = Setup::new(REGISTER);
    let r = s.login_as(
        NEWBIE,
        None,
        0,
        vec![text("+44 20 7946 0018"), text(NEW), Answer::Code],
    );
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(r.errors(), vec!["Numbers from GB are not allowed."]);
    assert_eq!(lookups(&s).len(), 1, "a refused country needs no lookup");

    let s = Setup::new(&format!("{REGISTER}[phone_number]\nallowed_countries = [\"US\", \"GB\"]\ndisallowed_countries = [\"GB\"]\n"));
    let r = s.login_as(
        NEWBIE,
        None,
        0,
        vec![text("+44 20 7946 0018"), text("x"), text("y")],
    );
    r.assert_rc(PAM_AUTH_ERR);
    assert_eq!(r.errors()[0], "Numbers from GB are not allowed.");
    assert!(s.sends().is_empty());
}

#[test]
fn landline_is_refused() {
    let s = Setup::new(REGISTER);
    s.sim.set_line_type(NEW_E164, "landline");
    let r = s.login_as(
        NEWBIE,
        None,
        0,
        vec![text(NEW), text("(201) 555-0178"), Answer::Code],
    );
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(
        r.errors(),
        vec!["Landline numbers cannot receive codes; use a mobile number."]
    );
    assert_eq!(
        s.sends()[0].form.get("To").map(String::as_str),
        Some("+12015550178")
    );
}

#[test]
fn lookup_failure_fails_closed() {
    let s = Setup::new(REGISTER);
    s.sim.inject(Fault::Status(500), 1);
    let r = s.login_as(NEWBIE, None, 0, vec![text(NEW), Answer::Code]);
    r.assert_rc(PAM_AUTH_ERR);
    assert_eq!(
        r.errors(),
        vec!["Unable to check this number right now; try again later."]
    );
    assert!(s.sends().is_empty());
    assert!(!s.lab.phones.join(NEWBIE).exists());
}

#[test]
fn change_of_number_end_to_end() {
    let s = Setup::new("allowed_methods = [\"sms\"]\nallow_change = true\n");
    let r = s.login(vec![
        text("change"),
        Answer::Code,
        text("(201) 555-0188"),
        Answer::Code,
    ]);
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(
        r.prompts(),
        vec![
            "Code sent by text message to (XXX) XXX-2671. Enter code (r: new code, c: change number): ",
            "Code sent by text message to (XXX) XXX-2671. Enter code (r: new code): ",
            "Enter your new mobile phone number: ",
            "Code sent by text message to (XXX) XXX-0188. Enter code (r: new code): ",
        ]
    );
    let d = s.sim.deliveries();
    assert_eq!(
        (d[0].to.as_str(), d[1].to.as_str()),
        (PHONE, "+12015550188")
    );
    assert_eq!(
        std::fs::read_to_string(s.lab.phones.join(USER)).unwrap(),
        "+12015550188\n"
    );
    assert!(
        s.lab
            .events()
            .contains("event=phone_changed old=+1******2671 user=root to=+1******0188"),
        "{}",
        s.lab.events()
    );
    // The old number is gone: the next login texts the new one.
    s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);
    assert_eq!(s.sim.deliveries().last().unwrap().to, "+12015550188");
}

#[test]
fn change_is_not_offered_when_disallowed_or_from_the_read_only_file() {
    let s = Setup::new("allowed_methods = [\"sms\"]\nallow_change = false\n");
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(
        r.prompts(),
        vec!["Code sent by text message to (XXX) XXX-2671. Enter code (r: new code): "]
    );

    let s = Setup::new("allow_change = true\n");
    let users = s.lab.dir.join("users.toml");
    s.lab
        .write_private(&users, &format!("[users]\nroot = \"{PHONE}\"\n"))
        .unwrap();
    s.rewrite_config(
        &format!(
            "allow_change = true\n[phones]\nfile = \"{}\"\ndirectory = \"{}\"\n",
            users.display(),
            s.lab.phones.display()
        ),
        |t| t,
    );
    let r = s.login(vec![text("1"), Answer::Code]);
    r.assert_rc(PAM_SUCCESS);
    assert!(!r.prompts()[0].contains("change"), "{:?}", r.prompts());
}

fn command_setup(script: &str) -> Setup {
    let s = Setup::sms("");
    let path = s.lab.dir.join("phone-of");
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
    s.rewrite_config(
        &format!(
            "allowed_methods = [\"sms\"]\n[phones]\ncommand = \"{} --user %u\"\n",
            path.display()
        ),
        |t| t,
    );
    s
}

#[test]
fn command_source_number_empty_failure_and_timeout() {
    let s = command_setup("[ \"$1\" = --user ] && [ \"$2\" = root ] && echo '(201) 555-0199'");
    s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);
    assert_eq!(
        s.sends()[0].form.get("To").map(String::as_str),
        Some("+12015550199")
    );

    let s = command_setup("exit 0");
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_AUTH_ERR);
    assert!(r.errors()[0].starts_with("No phone number is registered"));

    let s = command_setup("exit 2");
    s.login(vec![Answer::Code]).assert_rc(PAM_SERVICE_ERR);
    assert!(s.lab.events().contains("failed"), "{}", s.lab.events());
    assert!(s.sim.received().is_empty());

    let s = command_setup("sleep 30");
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_SERVICE_ERR);
    assert!(r.elapsed < Duration::from_secs(8), "{:?}", r.elapsed);
    assert!(
        s.lab.events().contains("timed out after 5 s"),
        "{}",
        s.lab.events()
    );
}

#[test]
fn user_set_show_remove_list() {
    let s = Setup::sms("");
    let (ok, out, err) = s.cli(&["user", "set", NEWBIE, NEW]);
    assert!(ok, "{err}");
    assert!(out.contains("+1******0177 stored in"), "{out}");
    assert_eq!(
        std::fs::read_to_string(s.lab.phones.join(NEWBIE)).unwrap(),
        format!("{NEW_E164}\n")
    );
    assert_eq!(lookups(&s).len(), 1, "set looks the number up");

    let (_, out, _) = s.cli(&["user", "show", NEWBIE]);
    assert_eq!(out, "daemon: +1******0177 from the directory source\n");
    let (_, out, _) = s.cli(&["user", "show", NEWBIE, "--full"]);
    assert_eq!(
        out,
        "daemon: +12015550177 ((201) 555-0177) from the directory source\n"
    );

    let (_, out, _) = s.cli(&["user", "list"]);
    assert!(
        out.contains("daemon") && out.contains("+1******0177"),
        "{out}"
    );
    assert!(
        out.contains("root") && out.contains("+1******2671"),
        "{out}"
    );
    assert!(!out.contains("2015552671"), "{out}");

    let (ok, _, _) = s.cli(&["user", "remove", NEWBIE]);
    assert!(ok);
    assert!(!s.lab.phones.join(NEWBIE).exists());
    let (_, out, _) = s.cli(&["user", "show", NEWBIE]);
    assert_eq!(out, "daemon: no number on file\n");
    let (ok, _, err) = s.cli(&["user", "remove", NEWBIE]);
    assert!(!ok && err.contains("no number on file"), "{err}");
    let log = s.lab.events();
    assert!(
        log.contains("event=phone_set user=daemon to=+1******0177 by="),
        "{log}"
    );
    assert!(log.contains("event=phone_removed user=daemon by="), "{log}");
}

#[test]
fn user_set_validates() {
    let s = Setup::sms("");
    let (ok, _, err) = s.cli(&["user", "set", NEWBIE, "+44 20 7946 0018"]);
    assert!(
        !ok && err.contains("Numbers from GB are not allowed."),
        "{err}"
    );
    let (ok, _, err) = s.cli(&["user", "set", NEWBIE, "hello"]);
    assert!(
        !ok && err.contains("That does not look like a phone number."),
        "{err}"
    );
    s.sim.set_line_type(NEW_E164, "landline");
    let (ok, _, err) = s.cli(&["user", "set", NEWBIE, NEW]);
    assert!(
        !ok && err.contains("Landline numbers cannot receive codes"),
        "{err}"
    );
    s.sim.inject(Fault::Status(503), 1);
    let (ok, _, err) = s.cli(&["user", "set", NEWBIE, "(201) 555-0178"]);
    assert!(
        !ok && err.contains("Unable to check this number right now") && err.contains("--no-lookup"),
        "{err}"
    );
    assert!(
        !s.lab.phones.join(NEWBIE).exists(),
        "nothing stored on any failure"
    );
    // --no-lookup skips only the carrier check.
    let (ok, _, err) = s.cli(&["user", "set", NEWBIE, NEW, "--no-lookup"]);
    assert!(ok, "{err}");
    let (ok, _, err) = s.cli(&["user", "set", "no-such-user-t2fa", NEW]);
    assert!(!ok && err.contains("no such user"), "{err}");
}

#[test]
fn user_commands_refuse_non_root() {
    use std::os::unix::process::CommandExt;
    let s = Setup::sms("");
    for args in [
        vec!["set", NEWBIE, NEW],
        vec!["show", NEWBIE],
        vec!["remove", NEWBIE],
        vec!["list"],
    ] {
        let out = Command::new(BIN)
            .arg("user")
            .args(&args)
            .args(["--config", s.lab.config.to_str().unwrap()])
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("must be run as root"),
            "{args:?}"
        );
    }
}

/// users.toml may name anyone, in any characters: `user list` and
/// `user show` print such names escaped, never raw to the terminal.
#[test]
fn user_commands_show_hostile_names_escaped() {
    let s = Setup::sms("");
    let users = s.lab.dir.join("users.toml");
    s.lab
        .write_private(
            &users,
            "[users]\n\"evil\\u001B[2J\\nroot\" = \"+12015550177\"\n",
        )
        .unwrap();
    s.rewrite_config(
        &format!(
            "[phones]\nfile = \"{}\"\ndirectory = \"{}\"\n",
            users.display(),
            s.lab.phones.display()
        ),
        |t| t,
    );
    let (ok, out, err) = s.cli(&["user", "list"]);
    assert!(ok, "{err}");
    assert!(!out.contains('\x1b'), "{out:?}");
    assert!(out.contains("evil\\u{1b}[2J\\u{a}root"), "{out}");
    let (_, out, _) = s.cli(&["user", "show", "evil\x1b[2J\nroot"]);
    assert!(!out.contains('\x1b'), "{out:?}");
    assert!(
        out.starts_with("evil\\u{1b}[2J\\u{a}root: +1******0177"),
        "{out}"
    );
}
