//! Failure policy, every Twilio error, TLS, proxies, API keys, who must use
//! the second factor, file permissions and hostile input, through the real
//! libpam against the simulator's fault injection.

mod common;

use common::*;
use pam_twilio_2fa::pam_client::*;
use pam_twilio_2fa::simulator::{Fault, SimConfig, Simulator, DEFAULT_AUTH_TOKEN};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

fn chmod(p: &std::path::Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A normal answer for the send, then `fault` for the check.
fn fault_at_check(s: &Setup, fault: Fault) {
    s.sim.inject(Fault::Delay(Duration::ZERO), 1);
    s.sim.inject(fault, 1);
}

// ---- The Twilio error table --------------------------------------------

#[test]
fn error_20003_bad_credentials_is_service_err_logged_at_error_level() {
    let s = Setup::sms("");
    s.sim.inject(Fault::Twilio(401, 20003), 1);
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_SERVICE_ERR);
    assert!(
        s.log()
            .contains("level=error msg=\"Twilio rejected the credentials (error 20003)"),
        "{}",
        s.log()
    );
}

#[test]
fn error_20404_on_check_says_expired_and_offers_a_resend() {
    let s = Setup::sms("");
    fault_at_check(&s, Fault::Twilio(404, 20404));
    let r = s.login(vec![Answer::Code, text("r"), Answer::Code]);
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(
        r.errors(),
        vec!["That code has expired. Type r to get a new code."]
    );
    assert_eq!(s.sends().len(), 2);
}

#[test]
fn error_20429_is_retried_once_only() {
    let s = Setup::sms("");
    s.sim.inject(Fault::Twilio(429, 20429), 2);
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_AUTH_ERR);
    assert_eq!(r.errors(), vec!["Too many requests, try again shortly."]);
    assert_eq!(s.sends().len(), 2, "one try and one retry, no storm");

    // One 429 with Retry-After: 1 (inside http_timeout): the retry succeeds.
    let s = Setup::sms("");
    s.sim.inject(Fault::TooManyRequests, 1);
    s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);
    assert_eq!(s.sends().len(), 2);

    // Retry-After that does not fit inside http_timeout: no retry.
    let s = Setup::sms("http_timeout = 1\n");
    s.sim.inject(Fault::TooManyRequests, 1);
    s.login(vec![Answer::Code]).assert_rc(PAM_AUTH_ERR);
    assert_eq!(s.sends().len(), 1);
}

#[test]
fn error_60212_too_many_concurrent_is_rate_limited_without_retry() {
    let s = Setup::sms("");
    s.sim.inject(Fault::Twilio(429, 60212), 1);
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_AUTH_ERR);
    assert_eq!(r.errors(), vec!["Too many requests, try again shortly."]);
    assert_eq!(s.sends().len(), 1);
}

#[test]
fn error_60200_invalid_parameter_is_denied_and_logged() {
    let s = Setup::sms("");
    // Twilio gives the same answer to the retry without a Locale.
    s.sim.inject(Fault::Twilio(400, 60200), 2);
    s.login(vec![Answer::Code]).assert_rc(PAM_AUTH_ERR);
    assert!(s.log().contains("Twilio error 60200"), "{}", s.log());
    let locales: Vec<Option<String>> = s
        .sends()
        .iter()
        .map(|r| r.form.get("Locale").cloned())
        .collect();
    assert_eq!(locales, vec![Some("en".to_string()), None]);
    assert!(!s.log().contains("Twilio refused Locale"), "{}", s.log());
}

#[test]
fn error_60202_takes_the_lockout_path() {
    let s = Setup::sms("");
    fault_at_check(&s, Fault::Twilio(429, 60202));
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_MAXTRIES);
    assert!(state_of(&s, USER).locked_until.is_some());
}

#[test]
fn error_60203_too_many_sends() {
    let s = Setup::sms("");
    s.sim.inject(Fault::Twilio(429, 60203), 1);
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_AUTH_ERR);
    assert_eq!(
        r.errors(),
        vec!["Too many codes were sent to this number; try again later."]
    );
    // And the simulator's own limit, as Twilio documents it: the sixth
    // send on one verification (logins that hang up leave it pending; a
    // resend cancels it, which starts the next one afresh).
    let s = Setup::sms("retry_time = 0\n");
    for _ in 0..5 {
        assert_ne!(s.login(vec![]).rc, PAM_SUCCESS);
    }
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_AUTH_ERR);
    assert_eq!(
        r.errors(),
        vec!["Too many codes were sent to this number; try again later."]
    );
    assert_eq!(s.sim.deliveries().len(), 5);
}

#[test]
fn errors_60205_and_60223_offer_another_method() {
    for code in [60205, 60223] {
        let s = Setup::new("allowed_methods = [\"sms\", \"call\"]\n");
        s.sim.inject(Fault::Twilio(400, code), 1);
        // Only "call" is left, so it is used without another menu.
        let r = s.login(vec![text("1"), Answer::Code]);
        r.assert_rc(PAM_SUCCESS);
        assert_eq!(
            r.errors(),
            vec!["A code cannot be sent to this number by text message; choose another way."]
        );
        assert_eq!(
            s.sends()[1].form.get("Channel").map(String::as_str),
            Some("call")
        );
    }
    let s = Setup::sms("");
    s.sim.inject(Fault::Twilio(400, 60205), 1);
    s.login(vec![Answer::Code]).assert_rc(PAM_AUTH_ERR);
}

#[test]
fn error_60410_fraud_block_denies_with_a_warning() {
    let s = Setup::sms("");
    s.sim.inject(Fault::Twilio(403, 60410), 1);
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_AUTH_ERR);
    assert_eq!(
        r.errors(),
        vec!["Codes cannot be sent to this number. Contact your administrator."]
    );
    assert!(
        s.log()
            .contains("level=warning msg=\"Twilio blocked sending"),
        "{}",
        s.log()
    );
}

#[test]
fn any_other_error_is_a_generic_denial_with_the_code_logged() {
    let s = Setup::sms("");
    s.sim.inject(Fault::Twilio(400, 60999), 1);
    s.login(vec![Answer::Code]).assert_rc(PAM_AUTH_ERR);
    assert!(s.log().contains("60999"));
    let s = Setup::sms("");
    fault_at_check(&s, Fault::Twilio(400, 60999));
    s.login(vec![Answer::Code]).assert_rc(PAM_AUTH_ERR);
}

#[test]
fn tls_failure_is_authinfo_unavail() {
    // The simulator speaks plain HTTP; a TLS client gets no handshake.
    let s = Setup::sms("http_timeout = 2\n");
    let url = s.sim.url();
    s.rewrite_config("allowed_methods = [\"sms\"]\nhttp_timeout = 2\n", |t| {
        t.replace(
            &format!("verify_url = \"{url}\""),
            &format!("verify_url = \"{}\"", url.replace("http://", "https://")),
        )
    });
    s.login(vec![Answer::Code]).assert_rc(PAM_AUTHINFO_UNAVAIL);
}

#[test]
fn unusable_answers_are_authinfo_unavail() {
    for (status, body) in [
        (201, "{}"),
        (201, "{\"sid\": 5, \"status\": \"pending\"}"),
        (
            201,
            "{\"sid\": \"VE../../Services\", \"status\": \"pending\"}",
        ),
        (201, "[]"),
        (201, "null"),
        (404, "not json"),
    ] {
        let s = Setup::sms("");
        s.sim.inject(Fault::Body(status, body.into()), 1);
        let r = s.login(vec![Answer::Code]);
        assert_eq!(code_name(r.rc), "PAM_AUTHINFO_UNAVAIL", "{status} {body}");
    }
    for body in ["{}", "{\"status\": 7}"] {
        let s = Setup::sms("");
        fault_at_check(&s, Fault::Body(200, body.into()));
        assert_eq!(
            code_name(s.login(vec![Answer::Code]).rc),
            "PAM_AUTHINFO_UNAVAIL",
            "{body}"
        );
    }
}

#[test]
fn redirects_are_not_followed() {
    let other = Simulator::start("127.0.0.1:0", SimConfig::default()).unwrap();
    let s = Setup::sms("");
    s.sim.inject(
        Fault::Redirect(format!("{}/v2/Services/x/Verifications", other.url())),
        1,
    );
    s.login(vec![Answer::Code]).assert_rc(PAM_AUTHINFO_UNAVAIL);
    assert!(
        other.received().is_empty(),
        "credentials were carried to another host"
    );
}

// ---- Failure policy in the stack ----------------------------------------

const IGNORE_OUTAGES: &str = "auth requisite pam_permit.so
auth [success=done authinfo_unavail=ignore default=die] MODULE
auth required pam_permit.so
";

#[test]
fn authinfo_unavail_ignore_admits_during_an_outage_but_never_with_a_broken_config() {
    let s = Setup::sms("http_timeout = 1\n");
    s.stack(IGNORE_OUTAGES);
    s.sim.inject(Fault::Status(503), 1);
    s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);
    // A wrong code is still a failure.
    s.login(vec![Answer::WrongCode; 5]).assert_rc(PAM_MAXTRIES);
    s.lab
        .write_private(&s.lab.config, "account_sid = \"typo\n")
        .unwrap();
    let r = s.login(vec![Answer::Code]);
    assert_ne!(
        code_name(r.rc),
        "PAM_SUCCESS",
        "a broken config must never be waved through"
    );
    r.assert_rc(PAM_SERVICE_ERR);
    // Nor bad credentials.
    let s = Setup::sms("");
    s.stack(IGNORE_OUTAGES);
    s.rewrite_config("allowed_methods = [\"sms\"]\n", |t| {
        t.replace(DEFAULT_AUTH_TOKEN, "wrong")
    });
    s.login(vec![Answer::Code]).assert_rc(PAM_SERVICE_ERR);
}

// ---- Proxies, API keys ---------------------------------------------------

#[test]
fn http_proxy_from_the_config_is_used() {
    let s = Setup::sms("http_timeout = 1\nhttp_proxy = \"http://127.0.0.1:9\"\n");
    s.login(vec![Answer::Code]).assert_rc(PAM_AUTHINFO_UNAVAIL);
    assert!(
        s.sim.received().is_empty(),
        "everything went to the (dead) proxy"
    );
}

#[test]
fn api_key_authentication() {
    let sid = "SK00000000000000000000000000000002";
    let sim_config = SimConfig {
        api_key: Some((sid.into(), "key-secret-55".into())),
        ..SimConfig::default()
    };
    let s = Setup::with_simulator(sim_config, "");
    let account = s.sim.config().account_sid.clone();
    s.rewrite_config("allowed_methods = [\"sms\"]\n", |t| {
        t.replace(
            &format!("account_sid = \"{account}\"\nauth_token = \"{DEFAULT_AUTH_TOKEN}\"\n"),
            &format!("api_key_sid = \"{sid}\"\napi_key_secret = \"key-secret-55\"\n"),
        )
    });
    assert!(std::fs::read_to_string(&s.lab.config)
        .unwrap()
        .contains("api_key_sid"));
    s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);
    assert!(s.sim.received().iter().all(|x| x.authorized));
    // A wrong secret is our setup's fault.
    s.rewrite_config("allowed_methods = [\"sms\"]\n", |t| {
        t.replace(
            &format!("account_sid = \"{account}\"\nauth_token = \"{DEFAULT_AUTH_TOKEN}\"\n"),
            &format!("api_key_sid = \"{sid}\"\napi_key_secret = \"wrong\"\n"),
        )
    });
    s.login(vec![Answer::Code]).assert_rc(PAM_SERVICE_ERR);
    assert!(!s.log().contains("key-secret-55"));
}

// ---- Who must use the second factor ---------------------------------------

/// Our module, then a stand-in for the rest of the stack that lets people in.
const THEN_PERMIT: &str = "auth required MODULE\nauth required pam_permit.so\n";

#[test]
fn only_groups_and_exempt_groups() {
    // root is in group root (primary), not in group daemon. A group that
    // does not resolve ("t2fa-nogroup") might be one the user is in: they verify.
    for (extra, asked) in [
        ("only_groups = [\"root\"]\n", true),
        ("only_groups = [\"daemon\"]\n", false),
        ("only_groups = [\"t2fa-nogroup\"]\n", true),
        ("exempt_groups = [\"root\"]\n", false),
        ("exempt_groups = [\"daemon\"]\n", true),
        ("exempt_groups = [\"root\", \"t2fa-nogroup\"]\n", true),
    ] {
        let s = Setup::sms(extra);
        s.stack(THEN_PERMIT);
        let r = s.login(vec![Answer::Code]);
        r.assert_rc(PAM_SUCCESS);
        assert_eq!(!s.sends().is_empty(), asked, "{extra}");
        assert_eq!(
            s.log().contains("event=verification_skipped"),
            !asked,
            "{extra}"
        );
        assert_eq!(
            s.log()
                .contains("group lookup failed: group t2fa-nogroup: no such group"),
            extra.contains("t2fa-nogroup"),
            "{extra}"
        );
    }
    // PAM_IGNORE alone decides nothing: with pam_deny after it, no way in.
    let s = Setup::sms("exempt_groups = [\"root\"]\n");
    s.stack("auth required MODULE\nauth required pam_deny.so\n");
    s.login(vec![]).assert_rc(PAM_AUTH_ERR);
}

#[test]
fn trusted_networks() {
    let s = Setup::sms("trusted_networks = [\"192.0.2.0/24\", \"::1/128\"]\n");
    s.stack(THEN_PERMIT);
    for (rhost, asked) in [
        (Some("192.0.2.10"), false),
        (Some("::1"), false),
        (Some("198.51.100.4"), true),
        (Some("trusted.example.com"), true),
        (None, true),
    ] {
        let before = s.sends().len();
        s.login_as(USER, rhost, 0, vec![Answer::Code])
            .assert_rc(PAM_SUCCESS);
        assert_eq!(s.sends().len() > before, asked, "{rhost:?}");
    }
    assert!(
        s.log().contains("reason=trusted_network:192.0.2.0/24"),
        "{}",
        s.log()
    );
}

// ---- Files and secrets -----------------------------------------------------

#[test]
fn insecure_files_are_refused_with_a_message_that_says_how_to_fix_them() {
    let s = Setup::sms("");
    chmod(&s.lab.config, 0o644);
    s.login(vec![Answer::Code]).assert_rc(PAM_SERVICE_ERR);
    let (ok, _, err) = twilio_2fa(&["check-config", s.lab.config.to_str().unwrap()]);
    assert!(
        !ok && err.contains("readable by group or others") && err.contains("chmod 600"),
        "{err}"
    );
    chmod(&s.lab.config, 0o600);

    // auth_token_file readable by others.
    let token = s.lab.dir.join("token");
    s.lab.write_private(&token, DEFAULT_AUTH_TOKEN).unwrap();
    chmod(&token, 0o604);
    s.rewrite_config("allowed_methods = [\"sms\"]\n", |t| {
        t.replace(
            &format!("auth_token = \"{DEFAULT_AUTH_TOKEN}\""),
            &format!("auth_token_file = \"{}\"", token.display()),
        )
    });
    s.login(vec![Answer::Code]).assert_rc(PAM_SERVICE_ERR);
    chmod(&token, 0o600);
    s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);

    // A phone file others can write: they could move the second factor.
    chmod(&s.lab.phones.join(USER), 0o666);
    s.login(vec![Answer::Code]).assert_rc(PAM_SERVICE_ERR);
    assert!(
        s.log().contains("writable by group or others"),
        "{}",
        s.log()
    );
    chmod(&s.lab.phones.join(USER), 0o600);

    // The phones directory writable by others.
    chmod(&s.lab.phones, 0o777);
    s.login(vec![Answer::Code]).assert_rc(PAM_SERVICE_ERR);
    chmod(&s.lab.phones, 0o700);
    s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);

    // users.toml owned by someone else.
    let users = s.lab.dir.join("users.toml");
    s.lab
        .write_private(&users, &format!("[users]\nroot = \"{PHONE}\"\n"))
        .unwrap();
    std::os::unix::fs::chown(&users, Some(65534), None).unwrap();
    s.rewrite_config(
        &format!(
            "allowed_methods = [\"sms\"]\n[phones]\nfile = \"{}\"\n",
            users.display()
        ),
        |t| t,
    );
    s.login(vec![Answer::Code]).assert_rc(PAM_SERVICE_ERR);
    assert!(s.log().contains("must be owned by root"), "{}", s.log());
}

#[test]
fn the_module_exports_only_the_pam_entry_points() {
    let out = std::process::Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(module_path())
        .output()
        .expect("nm (binutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "pam_sm_acct_mgmt",
            "pam_sm_authenticate",
            "pam_sm_chauthtok",
            "pam_sm_close_session",
            "pam_sm_open_session",
            "pam_sm_setcred"
        ]
    );
}

#[test]
fn text_from_outside_cannot_drive_the_terminal() {
    let s = Setup::new("");
    // A user name full of escapes is echoed nowhere: it is unknown.
    let r = s.login_as("\x1b]0;pwned\x07", None, 0, vec![]);
    r.assert_rc(PAM_USER_UNKNOWN);
    assert!(r.shown.is_empty());
    // Labels are checked at config time: control characters are refused.
    s.rewrite_config("[methods.sms]\nlabel = \"te\\u001b[2Jxt\"\n", |t| t);
    s.login(vec![text("1")]).assert_rc(PAM_SERVICE_ERR);
}

// ---- Hostile input -----------------------------------------------------------

#[test]
fn huge_and_odd_answers_are_refused_without_harm() {
    let s = Setup::sms("");
    let huge = "9".repeat(1 << 20);
    let r = s.login(vec![
        text(&huge),
        text("\x1b[2J123456"),
        text("１２３４５６"),
        text("12\u{7f}3456"),
        Answer::Code,
    ]);
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(r.errors(), vec!["The code must be 4 to 10 digits."; 4]);
    assert_eq!(s.checks().len(), 1);
    // A huge menu answer too.
    let s = Setup::new("");
    s.login(vec![text(&huge), text("\u{0}"), text("1"), Answer::Code])
        .assert_rc(PAM_SUCCESS);
}

#[test]
fn non_utf8_user_names_are_unknown() {
    let s = Setup::sms("");
    let responder = Box::new(|_: Style, _: &str| -> Option<String> { Some("123456".into()) });
    let mut tx = Transaction::start_raw(
        SERVICE,
        &[0xff, 0xfe, b'r', b'o', b'o', b't'],
        Some(&s.lab.confdir),
        responder,
    )
    .unwrap();
    assert_eq!(code_name(tx.authenticate(0)), "PAM_USER_UNKNOWN");
    drop(tx);
    assert!(s.sim.received().is_empty());
}

#[test]
fn a_100_kb_config_is_read_and_a_huge_one_is_refused() {
    let s = Setup::sms("");
    let base = std::fs::read_to_string(&s.lab.config).unwrap();
    let padded = format!(
        "{}{base}",
        "# padding for a large config file\n".repeat(3000)
    );
    assert!(padded.len() > 100_000);
    s.lab.write_private(&s.lab.config, &padded).unwrap();
    s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);
    let junk = format!("{base}{}", "x".repeat(1 << 20));
    s.lab.write_private(&s.lab.config, &junk).unwrap();
    s.login(vec![Answer::Code]).assert_rc(PAM_SERVICE_ERR);
}

// ---- Nothing secret in the logs ----------------------------------------------

#[test]
fn nothing_logged_holds_a_token_secret_code_or_full_number() {
    let s = Setup::new("allow_register = true\nallow_change = true\n");
    s.login(vec![text("1"), Answer::WrongCode, Answer::Code])
        .assert_rc(PAM_SUCCESS);
    s.login(vec![
        text("2"),
        text("c"),
        Answer::Code,
        text("(201) 555-0188"),
        Answer::Code,
    ])
    .assert_rc(PAM_SUCCESS);
    s.login_as(
        "daemon",
        None,
        0,
        vec![text("(201) 555-0177"), text("3"), Answer::Code],
    )
    .assert_rc(PAM_SUCCESS);
    s.sim.inject(Fault::Twilio(400, 60200), 2);
    s.login(vec![text("1"), Answer::Code]);
    s.sim.inject(Fault::Status(500), 1);
    s.login(vec![text("1"), Answer::Code]);
    s.login(vec![
        text("1"),
        Answer::WrongCode,
        Answer::WrongCode,
        Answer::WrongCode,
        Answer::WrongCode,
        Answer::WrongCode,
    ]);
    s.cli(&["user", "set", "bin", "(201) 555-0166"]);
    s.cli(&["user", "show", "bin"]);
    s.cli(&["unlock", USER]);
    let log = s.log();
    assert!(log.lines().count() > 20, "{log}");
    assert!(!log.contains(DEFAULT_AUTH_TOKEN), "token logged");
    for d in s.sim.deliveries() {
        assert!(!log.contains(&d.code), "code {} logged:\n{log}", d.code);
        assert!(!log.contains(&d.to), "full number {} logged:\n{log}", d.to);
    }
    for digits in [
        "2015552671",
        "2015550188",
        "2015550177",
        "2015550166",
        "555-2671",
        "555-0188",
    ] {
        assert!(!log.contains(digits), "{digits} logged:\n{log}");
    }
}
