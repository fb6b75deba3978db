//! `[[policy]]` blocks through the real libpam: per-group and per-user
//! settings, first match wins, unknown keys refused, `twilio-2fa policy`.
//! (A group lookup that fails is in src/flow/tests.rs, with a fake user
//! database: `a_policy_that_cannot_be_decided_denies_the_login`.)

mod common;

use common::*;
use pam_twilio_2fa::pam_client::*;

/// A second account every Debian system has, not in group root.
const OTHER: &str = "daemon";
const OTHER_PHONE: &str = "+12015550177";

#[test]
fn a_group_policy_lowers_max_attempts_for_its_members_only() {
    let s = Setup::sms("[[policy]]\ngroups = [\"root\"]\nmax_attempts = 1\n");
    s.lab.set_phone(OTHER, OTHER_PHONE).unwrap();
    // root is in group root: one wrong code ends the login.
    s.login(vec![Answer::WrongCode, Answer::Code])
        .assert_rc(PAM_MAXTRIES);
    // daemon is not: the default five attempts.
    s.login_as(OTHER, None, 0, vec![Answer::WrongCode, Answer::Code])
        .assert_rc(PAM_SUCCESS);
}

#[test]
fn a_user_policy_changes_the_method_and_the_first_match_wins() {
    let s = Setup::sms(
        "[[policy]]\nusers = [\"root\"]\nallowed_methods = [\"call\"]\n\
         [[policy]]\ngroups = [\"root\"]\nallowed_methods = [\"whatsapp\"]\nmax_attempts = 1\n",
    );
    let r = s.login(vec![Answer::WrongCode, Answer::Code]);
    r.assert_rc(PAM_SUCCESS);
    let sends = s.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(
        sends[0].form.get("Channel").map(String::as_str),
        Some("call")
    );
    // The second block (also matching) set nothing: max_attempts stayed 5.
    let (ok, out, err) = s.cli(&["policy", "root"]);
    assert!(ok, "{err}");
    assert!(out.contains("user root: policy[1] applies"), "{out}");
    assert!(
        out.contains("allowed_methods = [\"call\"]  # policy[1]"),
        "{out}"
    );
    assert!(out.contains("max_attempts = 5  # default"), "{out}");
    assert!(out.contains("allow_change = false  # top level"), "{out}");
}

#[test]
fn policy_shows_when_no_block_applies() {
    let s = Setup::sms("[[policy]]\nusers = [\"nobody\"]\nmax_attempts = 1\n");
    let (ok, out, err) = s.cli(&["policy", "root"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("user root: no [[policy]] block applies"),
        "{out}"
    );
    assert!(
        out.contains("allowed_methods = [\"sms\"]  # top level"),
        "{out}"
    );
    assert!(out.contains("max_attempts = 5  # default"), "{out}");
}

#[test]
fn an_unknown_key_in_a_block_is_a_config_error() {
    let s = Setup::sms(
        "[[policy]]\nusers = [\"nobody\"]\n[[policy]]\ngroups = [\"root\"]\nmax_attempt = 1\n",
    );
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_SERVICE_ERR);
    assert!(s.sends().is_empty());
    let config = s.lab.config.to_str().unwrap();
    let (ok, _, err) = twilio_2fa(&["check-config", config]);
    assert!(!ok);
    assert!(
        err.contains("policy[2]: unknown field `max_attempt`"),
        "{err}"
    );
}

#[test]
fn blocks_are_checked_like_the_top_level() {
    for (block, want) in [
        (
            "groups = [\"root\"]\nmax_attempts = 0\n",
            "policy[1].max_attempts: must be between 1 and 20",
        ),
        (
            "max_attempts = 2\n",
            "policy[1]: names neither users nor groups",
        ),
        (
            "users = [\"root\"]\nregister_optional = true\n",
            "policy[1].register_optional: only meaningful with allow_register = true",
        ),
        (
            "users = [\"root\"]\nallowed_methods = []\n",
            "policy[1].allowed_methods: must name at least one",
        ),
    ] {
        let s = Setup::sms(&format!("[[policy]]\n{block}"));
        s.login(vec![Answer::Code]).assert_rc(PAM_SERVICE_ERR);
        let config = s.lab.config.to_str().unwrap();
        let (ok, _, err) = twilio_2fa(&["check-config", config]);
        assert!(!ok && err.contains(want), "{block}: {err}");
    }
}
