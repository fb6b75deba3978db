//! The code prompt (issue #13, part 4): the code is sent at once, and the
//! prompt itself offers a new code (r), another method (m) and a change of
//! number (c), naming only the choices that apply. Through the real libpam
//! and the simulator.

mod common;

use common::*;
use pam_twilio_2fa::pam_client::*;
use pam_twilio_2fa::simulator::Fault;
use std::time::Duration;

/// As a new user finds it: one method, a number in the phones directory,
/// `allow_change = true` (the packaged default, set here as the harness
/// turns it off).
const PACKAGED: &str = "allowed_methods = [\"sms\"]\nallow_change = true\n";
const NEW: &str = "+12015550188";

#[test]
fn packaged_defaults_send_at_once_with_no_prompt_before_the_code() {
    let s = Setup::new(PACKAGED);
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(
        r.prompts(),
        vec![
            "Code sent by text message to (XXX) XXX-2671. Enter code (r: new code, c: change number): "
        ],
        "{:?}",
        r.shown
    );
    assert_eq!(s.sends().len(), 1);
}

#[test]
fn c_at_the_code_prompt_asks_the_new_number_after_the_right_code() {
    let s = Setup::new(PACKAGED);
    let r = s.login(vec![
        text("c"),
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
        ],
        "{:?}",
        r.shown
    );
    let d = s.sim.deliveries();
    assert_eq!(
        d.iter().map(|d| d.to.as_str()).collect::<Vec<_>>(),
        vec![PHONE, NEW]
    );
    assert_eq!(
        std::fs::read_to_string(s.lab.phones.join(USER)).unwrap(),
        format!("{NEW}\n")
    );
    assert!(
        s.lab
            .events()
            .contains("event=phone_changed old=+1******2671 user=root to=+1******0188"),
        "{}",
        s.lab.events()
    );
}

#[test]
fn a_wrong_code_after_c_changes_nothing() {
    let s = Setup::new(&format!("{PACKAGED}max_attempts = 1\n"));
    let r = s.login(vec![text("c"), Answer::WrongCode, text("(201) 555-0188")]);
    r.assert_rc(PAM_MAXTRIES);
    assert!(
        !r.prompts().iter().any(|p| p.contains("new mobile")),
        "{:?}",
        r.shown
    );
    assert_eq!(
        std::fs::read_to_string(s.lab.phones.join(USER)).unwrap(),
        format!("{PHONE}\n")
    );
    assert_eq!(s.sends().len(), 1);
    assert!(!s.lab.events().contains("phone_changed"));
}

#[test]
fn m_at_the_code_prompt_goes_back_to_the_menu_and_sends_like_a_resend() {
    let s = Setup::new("allowed_methods = [\"sms\", \"call\"]\nretry_time = 5\n");
    let r = s.login(vec![
        text("1"),
        // Within retry_time: the menu, then a wait and no second send.
        text("m"),
        text("2"),
        Answer::After(Duration::from_millis(5500), Box::new(text("m"))),
        text("2"),
        Answer::Code,
    ]);
    r.assert_rc(PAM_SUCCESS);
    let menu = "Choose how to receive your code:\n  1. text message\n  2. voice call\nEnter 1-2: ";
    assert_eq!(
        r.prompts(),
        vec![
            menu,
            "Code sent by text message to (XXX) XXX-2671. Enter code (r: new code, m: other method): ",
            menu,
            "Code sent by text message to (XXX) XXX-2671. Enter code (r: new code, m: other method): ",
            menu,
            "Code sent by voice call to (XXX) XXX-2671. Enter code (r: new code, m: other method): ",
        ],
        "{:?}",
        r.shown
    );
    assert_eq!(r.errors().len(), 1, "{:?}", r.shown);
    assert!(
        r.errors()[0].starts_with("You can request a new code in "),
        "{:?}",
        r.shown
    );
    let channels: Vec<String> = s
        .sim
        .deliveries()
        .iter()
        .map(|d| d.channel.clone())
        .collect();
    assert_eq!(channels, vec!["sms", "call"]);
    // The first verification was cancelled, as on a resend.
    let first = s.sim.deliveries()[0].sid.clone();
    assert!(
        s.lab
            .events()
            .contains(&format!("sid={first} status=canceled")),
        "{}",
        s.lab.events()
    );
}

#[test]
fn the_prompt_names_exactly_the_choices_that_apply() {
    // Several methods and a change allowed: all three.
    let s = Setup::new("allowed_methods = [\"sms\", \"call\"]\nallow_change = true\n");
    let r = s.login(vec![text("1"), Answer::Code]);
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(
        r.prompts()[1],
        "Code sent by text message to (XXX) XXX-2671. Enter code (r: new code, m: other method, c: change number): "
    );
    // One method, no change: a new code only; m and c are not codes.
    let s = Setup::new("allowed_methods = [\"sms\"]\nallow_change = false\n");
    let r = s.login(vec![text("m"), text("c"), Answer::Code]);
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(
        r.prompts()[0],
        "Code sent by text message to (XXX) XXX-2671. Enter code (r: new code): "
    );
    assert_eq!(r.errors().len(), 2, "{:?}", r.shown);
    assert!(!r.prompts().iter().any(|p| p.contains("Choose how")));
    // A method Twilio cannot use is no "other method": with two allowed
    // and the text message refused (60205 landline), no m is offered.
    let s = Setup::new("allowed_methods = [\"sms\", \"call\"]\n");
    s.sim.inject(Fault::Twilio(400, 60205), 1);
    let r = s.login(vec![text("1"), Answer::Code]);
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(
        r.prompts().last().unwrap(),
        "Code sent by voice call to (XXX) XXX-2671. Enter code (r: new code): "
    );
}
