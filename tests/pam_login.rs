//! Logins through the real libpam (pam_start_confdir) against the simulator.

mod common;

use common::*;
use pam_twilio_2fa::pam_client::*;
use pam_twilio_2fa::simulator::{Fault, DEFAULT_AUTH_TOKEN};
use std::time::Duration;

const PROMPT: &str = "Code sent by text message to (XXX) XXX-2671. Enter code (r: new code): ";

#[test]
fn happy_path_sends_sms_and_accepts_the_code() {
    let s = Setup::sms("");
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(r.prompts(), vec![PROMPT]);
    assert_eq!(
        r.of(Style::EchoOff).len(),
        1,
        "the code prompt does not echo"
    );

    let sends = s.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].form.get("To").map(String::as_str), Some(PHONE));
    assert_eq!(
        sends[0].form.get("Channel").map(String::as_str),
        Some("sms")
    );
    assert!(sends[0].authorized);
    assert!(sends[0].user_agent.starts_with("pam-twilio-2fa/"));

    let checks = s.checks();
    let sid = &s.sim.deliveries()[0].sid;
    assert_eq!(checks.len(), 1);
    assert_eq!(
        checks[0].form.get("VerificationSid"),
        Some(sid),
        "check is bound to the SID"
    );
    assert_eq!(
        checks[0].form.get("To"),
        None,
        "never checked by number alone"
    );
    assert_eq!(s.sim.final_status(sid).as_deref(), Some("approved"));
}

#[test]
fn events_are_logged_without_codes_or_full_numbers() {
    let s = Setup::sms("");
    s.login(vec![Answer::WrongCode, Answer::Code])
        .assert_rc(PAM_SUCCESS);
    let log = s.lab.events();
    for event in [
        "verification_sent",
        "verification_failed",
        "verification_success",
        "verification_status_changed",
    ] {
        assert!(
            log.contains(&format!("event={event} ")),
            "{event} missing in:\n{log}"
        );
    }
    assert!(log.contains("to=+1******2671"), "{log}");
    assert!(log.contains("rhost=192.0.2.10"), "{log}");
    assert!(log.contains("service=t2fa-test"), "{log}");
    assert!(!log.contains("2015552671"), "full number logged:\n{log}");
    for d in s.sim.deliveries() {
        assert!(!log.contains(&d.code), "code logged:\n{log}");
    }
    assert!(!log.contains(DEFAULT_AUTH_TOKEN));
}

#[test]
fn wrong_then_right_code() {
    let s = Setup::sms("");
    let r = s.login(vec![Answer::WrongCode, Answer::Code]);
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(r.errors(), vec!["That code was not correct."]);
    assert_eq!(s.checks().len(), 2);
}

#[test]
fn fifth_code_right_still_succeeds() {
    let s = Setup::sms("");
    let mut answers = vec![Answer::WrongCode; 4];
    answers.push(Answer::Code);
    s.login(answers).assert_rc(PAM_SUCCESS);
}

#[test]
fn attempts_exhausted_is_maxtries_and_cancels_the_verification() {
    let s = Setup::sms("");
    let r = s.login(vec![Answer::WrongCode; 6]);
    r.assert_rc(PAM_MAXTRIES);
    assert_eq!(s.checks().len(), 5);
    let sid = &s.sim.deliveries()[0].sid;
    assert_eq!(s.sim.final_status(sid).as_deref(), Some("canceled"));
    let cancel = s.requests_to(&format!("/Verifications/{sid}"));
    assert_eq!(cancel.len(), 1);
    assert_eq!(
        cancel[0].form.get("Status").map(String::as_str),
        Some("canceled")
    );
    assert_eq!(
        r.errors().last().map(String::as_str),
        Some("Too many failed attempts. Try again in 10 minutes.")
    );
}

#[test]
fn menu_choice_sends_the_chosen_channel() {
    for (answer, channel, label) in [
        ("2", "call", "voice call"),
        ("whatsapp", "whatsapp", "WhatsApp"),
        ("1", "sms", "text message"),
    ] {
        let s = Setup::new("");
        let r = s.login(vec![text(answer), Answer::Code]);
        r.assert_rc(PAM_SUCCESS);
        assert_eq!(r.of(Style::EchoOn).len(), 1, "the menu echoes");
        assert!(
            r.prompts()[0].contains("1. text message\n  2. voice call\n  3. WhatsApp"),
            "{:?}",
            r.prompts()
        );
        assert_eq!(
            s.sends()[0].form.get("Channel").map(String::as_str),
            Some(channel)
        );
        assert_eq!(
            r.prompts()[1],
            format!(
                "Code sent by {label} to (XXX) XXX-2671. Enter code (r: new code, m: other method): "
            )
        );
    }
}

#[test]
fn menu_nonsense_three_times_is_auth_err_and_nothing_sent() {
    let s = Setup::new("");
    let r = s.login(vec![text("7"), text("email"), text("")]);
    r.assert_rc(PAM_AUTH_ERR);
    assert!(s.sim.received().is_empty());
}

#[test]
fn early_resend_refused_later_resend_sends_again() {
    let s = Setup::sms("retry_time = 1\n");
    let r = s.login(vec![
        text("r"),
        Answer::After(Duration::from_millis(1100), Box::new(text("resend"))),
        Answer::Code,
    ]);
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(r.errors(), vec!["You can request a new code in 1 second."]);
    let d = s.sim.deliveries();
    assert_eq!(d.len(), 2, "the later resend sent a new code");
    assert_ne!(d[0].sid, d[1].sid);
    assert_eq!(d[1].channel, "sms", "same method");
    assert_eq!(s.sim.final_status(&d[0].sid).as_deref(), Some("canceled"));
    assert_eq!(s.checks()[0].form.get("VerificationSid"), Some(&d[1].sid));
}

#[test]
fn malformed_codes_never_reach_the_simulator() {
    let s = Setup::sms("");
    let r = s.login(vec![
        text("12ab56"),
        text("123"),
        text("12345678901"),
        Answer::Code,
    ]);
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(r.errors(), vec!["The code must be 4 to 10 digits."; 3]);
    assert_eq!(s.checks().len(), 1);
}

#[test]
fn code_with_spaces_and_dashes_is_accepted() {
    for answer in [Answer::CodeSpaced, Answer::CodeDashed] {
        let s = Setup::sms("");
        s.login(vec![answer]).assert_rc(PAM_SUCCESS);
        assert_eq!(
            s.checks()[0].form.get("Code"),
            Some(&s.sim.deliveries()[0].code)
        );
    }
}

#[test]
fn bad_credentials_are_service_err() {
    let s = Setup::sms("");
    s.rewrite_config("allowed_methods = [\"sms\"]\n", |t| {
        t.replace(DEFAULT_AUTH_TOKEN, "wrong-token")
    });
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_SERVICE_ERR);
    assert!(s.sim.deliveries().is_empty());
    assert!(!s.sim.received()[0].authorized);
    assert!(s.lab.events().contains("20003"), "{}", s.lab.events());
}

#[test]
fn unknown_service_sid_is_service_err() {
    let s = Setup::sms("");
    s.rewrite_config("allowed_methods = [\"sms\"]\n", |t| {
        t.replace(
            "VA00000000000000000000000000000001",
            "VA0000000000000000000000000000dead",
        )
    });
    s.login(vec![Answer::Code]).assert_rc(PAM_SERVICE_ERR);
}

#[test]
fn broken_or_missing_or_unsafe_config_is_service_err() {
    let s = Setup::sms("");
    s.lab
        .write_private(&s.lab.config, "account_sid = 12\n")
        .unwrap();
    s.login(vec![Answer::Code]).assert_rc(PAM_SERVICE_ERR);

    s.rewrite_config("allowed_methods = [\"sms\"]\nmax_atempts = 3\n", |t| t);
    s.login(vec![Answer::Code]).assert_rc(PAM_SERVICE_ERR);

    s.rewrite_config("allowed_methods = [\"sms\"]\n", |t| t);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&s.lab.config, std::fs::Permissions::from_mode(0o666)).unwrap();
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_SERVICE_ERR);

    std::fs::remove_file(&s.lab.config).unwrap();
    s.login(vec![Answer::Code]).assert_rc(PAM_SERVICE_ERR);
    assert!(
        s.sim.received().is_empty(),
        "nothing sent with a broken config"
    );
}

#[test]
fn unknown_module_argument_is_service_err() {
    let s = Setup::sms("");
    s.lab.write_service(SERVICE, &s.module, "nullok").unwrap();
    s.login(vec![Answer::Code]).assert_rc(PAM_SERVICE_ERR);
    assert!(s.sim.received().is_empty());
}

fn assert_unavailable_within_timeout(s: &Setup) {
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_AUTHINFO_UNAVAIL);
    assert_eq!(
        r.errors(),
        vec!["Two-factor authentication is unavailable right now."]
    );
    // http_timeout is 1 s in these tests; the login must not wait much longer.
    assert!(r.elapsed < Duration::from_secs(2), "took {:?}", r.elapsed);
}

#[test]
fn simulator_down_is_authinfo_unavail() {
    let s = Setup::sms("http_timeout = 1\n");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = s.sim.url();
    s.rewrite_config("allowed_methods = [\"sms\"]\nhttp_timeout = 1\n", |t| {
        t.replace(&url, &format!("http://127.0.0.1:{port}"))
    });
    assert_unavailable_within_timeout(&s);
}

#[test]
fn simulator_hanging_is_authinfo_unavail_within_timeout() {
    let s = Setup::sms("http_timeout = 1\n");
    s.sim.inject(Fault::Delay(Duration::from_secs(5)), 1);
    assert_unavailable_within_timeout(&s);
}

#[test]
fn simulator_5xx_garbage_or_hangup_is_authinfo_unavail() {
    for fault in [
        Fault::Status(500),
        Fault::Status(503),
        Fault::Garbage,
        Fault::Close,
    ] {
        let s = Setup::sms("http_timeout = 1\n");
        s.sim.inject(fault.clone(), 1);
        let r = s.login(vec![Answer::Code]);
        assert_eq!(
            code_name(r.rc),
            "PAM_AUTHINFO_UNAVAIL",
            "{fault:?}: {:?}",
            r.shown
        );
    }
}

#[test]
fn failure_during_check_is_authinfo_unavail_not_success() {
    let s = Setup::sms("http_timeout = 1\n");
    // The send goes through (a zero delay is a normal answer); the check gets a 500.
    s.sim.inject(Fault::Delay(Duration::ZERO), 1);
    s.sim.inject(Fault::Status(500), 1);
    s.login(vec![Answer::Code]).assert_rc(PAM_AUTHINFO_UNAVAIL);
    assert_eq!(s.checks().len(), 1);
}

#[test]
fn user_without_number_is_auth_err_and_nothing_sent() {
    let s = Setup::sms("");
    let r = s.login_as("daemon", Some("192.0.2.10"), 0, vec![Answer::Code]);
    r.assert_rc(PAM_AUTH_ERR);
    assert_eq!(
        r.errors(),
        vec!["No phone number is registered for two-factor authentication. Contact your administrator."]
    );
    assert!(s.sim.received().is_empty());
}

#[test]
fn unparsable_number_is_auth_err_and_nothing_sent() {
    let s = Setup::sms("");
    s.lab.set_phone("daemon", "call me maybe").unwrap();
    let r = s.login_as("daemon", None, 0, vec![Answer::Code]);
    r.assert_rc(PAM_AUTH_ERR);
    assert!(s.sim.received().is_empty());
}

#[test]
fn user_unknown_to_the_system_is_user_unknown_and_nothing_sent() {
    let s = Setup::sms("");
    s.lab.set_phone("no-such-user-t2fa", PHONE).unwrap();
    let r = s.login_as(
        "no-such-user-t2fa",
        Some("192.0.2.10"),
        0,
        vec![Answer::Code],
    );
    r.assert_rc(PAM_USER_UNKNOWN);
    assert!(r.shown.is_empty());
    assert!(s.sim.received().is_empty());
}

#[test]
fn client_hanging_up_is_conv_err() {
    let s = Setup::sms("");
    s.login(vec![]).assert_rc(PAM_CONV_ERR);
}

#[test]
fn panic_in_the_core_is_system_err_not_a_crash() {
    let s = Setup::sms("");
    s.lab
        .write_service(SERVICE, &s.module, "test_panic")
        .unwrap();
    s.login(vec![Answer::Code]).assert_rc(PAM_SYSTEM_ERR);
    // The process is still here, and the next login works.
    s.lab.write_service(SERVICE, &s.module, "").unwrap();
    s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);
}

#[test]
fn friendly_name_template_reaches_twilio() {
    let s = Setup::sms("service_name = \"{service} {user}\"\n");
    s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);
    assert_eq!(
        s.sends()[0]
            .form
            .get("CustomFriendlyName")
            .map(String::as_str),
        Some("t2fa-test root")
    );
}

#[test]
fn obfuscate_false_shows_the_national_number() {
    let s = Setup::sms("obfuscate = false\n");
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(
        r.prompts(),
        vec!["Code sent by text message to (201) 555-2671. Enter code (r: new code): "]
    );
}

#[test]
fn setcred_succeeds() {
    let s = Setup::sms("");
    assert_eq!(code_name(s.setcred(USER)), "PAM_SUCCESS");
}

#[test]
fn users_file_source_comes_first_and_is_normalised() {
    let s = Setup::sms("");
    let users = s.lab.dir.join("users.toml");
    // A national-format number in the file wins over the directory entry.
    s.lab
        .write_private(&users, "[users]\nroot = \"(201) 555-0188\"\n")
        .unwrap();
    let dir = s.lab.phones.display().to_string();
    s.rewrite_config(
        &format!(
            "allowed_methods = [\"sms\"]\n[phones]\nfile = \"{}\"\ndirectory = \"{dir}\"\n",
            users.display()
        ),
        |t| t,
    );
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(
        s.sends()[0].form.get("To").map(String::as_str),
        Some("+12015550188")
    );
    assert_eq!(
        r.prompts(),
        vec!["Code sent by text message to (XXX) XXX-0188. Enter code (r: new code): "]
    );
}

#[test]
fn pam_silent_still_shows_what_the_user_must_know() {
    // sudo always passes PAM_SILENT: the prompt and the error for a wrong code must still show.
    let s = Setup::sms("");
    let r = s.login_as(
        USER,
        None,
        PAM_SILENT,
        vec![Answer::WrongCode, Answer::Code],
    );
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(r.prompts(), vec![PROMPT, PROMPT]);
    assert_eq!(r.errors(), vec!["That code was not correct."]);
    assert!(r.of(Style::Info).is_empty());
}

#[test]
fn send_and_check_share_one_connection() {
    let s = Setup::sms("");
    s.login(vec![Answer::WrongCode, Answer::Code])
        .assert_rc(PAM_SUCCESS);
    let st = s.sim.stats();
    assert_eq!(st.requests, 3, "send, wrong check, right check");
    assert_eq!(st.connections, 1, "one TCP connection per login");
}

#[test]
fn twilio_named_by_host_name_is_reached_over_one_connection() {
    let s = Setup::sms("");
    s.rewrite_config("allowed_methods = [\"sms\"]", |text| {
        text.replace("http://127.0.0.1:", "http://localhost:")
    });
    assert!(std::fs::read_to_string(&s.lab.config)
        .unwrap()
        .contains("verify_url = \"http://localhost:"));
    s.login(vec![Answer::WrongCode, Answer::Code])
        .assert_rc(PAM_SUCCESS);
    let st = s.sim.stats();
    assert_eq!(st.requests, 3, "send, wrong check, right check");
    assert_eq!(st.connections, 1, "one TCP connection per login");
}
