//! `[rate_limits]` through the real libpam and the real CLI, against the
//! simulator's Service Rate Limits and Buckets: what a send carries (hashed
//! keys, never the user name or the address), a full bucket (the user's
//! message, PAM_AUTH_ERR, the admin's log line), `twilio-2fa rate-limits
//! apply` (idempotent; changes and deletions; other applications' rate
//! limits left alone), `show`, and configs `check-config` refuses.
//! The fleet-wide figures are in tests/fleet.rs.

mod common;

use common::*;
use pam_twilio_2fa::pam_client::*;
use pam_twilio_2fa::simulator::Fault;
use pam_twilio_2fa::twilio_client::{agent, basic_auth};

const SECRET: &str = "test-secret-0123456789abcdef0123456789abcdef";

/// Three limits, one of each key kind; `user_max` sends per 10 minutes by user.
fn limits(s: &Setup, user_max: u32) -> String {
    let secret = s.lab.dir.join("rate_limits.secret");
    s.lab.write_private(&secret, SECRET).unwrap();
    format!(
        r#"[rate_limits]
secret_file = "{}"

[[rate_limits.limit]]
name = "t2fa_user"
key = "user"
buckets = [{{ max = {user_max}, interval = 600 }}, {{ max = 10, interval = 3600 }}]

[[rate_limits.limit]]
name = "t2fa_address"
key = "rhost"
buckets = [{{ max = 20, interval = 3600 }}]

[[rate_limits.limit]]
name = "t2fa_user_address"
key = "user+rhost"
buckets = [{{ max = 5, interval = 600 }}]
"#,
        secret.display()
    )
}

/// A setup whose config declares `limits`, applied to the simulator.
fn limited(user_max: u32, top: &str) -> Setup {
    let s = Setup::sms(top);
    let text = limits(&s, user_max);
    s.rewrite_config(&format!("allowed_methods = [\"sms\"]\n{top}"), |c| {
        format!("{c}\n{text}")
    });
    let (ok, out, err) = s.cli(&["rate-limits", "apply"]);
    assert!(ok, "apply: {out}{err}");
    s
}

fn rate_limits_of(
    r: &pam_twilio_2fa::simulator::Received,
) -> serde_json::Map<String, serde_json::Value> {
    let text = r.form.get("RateLimits").expect("a RateLimits parameter");
    match serde_json::from_str(text).expect("RateLimits is JSON") {
        serde_json::Value::Object(m) => m,
        other => panic!("RateLimits is not an object: {other}"),
    }
}

#[test]
fn a_send_names_every_rate_limit_with_a_keyed_hash_never_the_user_or_the_address() {
    let s = limited(3, "");
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_SUCCESS);
    let sends = s.sends();
    assert_eq!(sends.len(), 1);
    let values = rate_limits_of(&sends[0]);
    let names: Vec<&str> = values.keys().map(String::as_str).collect();
    assert_eq!(names, ["t2fa_address", "t2fa_user", "t2fa_user_address"]);
    for v in values.values() {
        let v = v.as_str().expect("a string value");
        assert_eq!(v.len(), 32, "{v}");
        assert!(v.bytes().all(|b| b.is_ascii_hexdigit()), "{v}");
    }
    // Three limits, three unrelated values.
    let mut distinct: Vec<&serde_json::Value> = values.values().collect();
    distinct.dedup();
    assert_eq!(distinct.len(), 3);
    // Nothing Twilio received holds the user name or the address.
    for req in s.sim.received() {
        for (k, v) in &req.form {
            assert!(
                !v.contains("192.0.2.10") && !v.contains(USER),
                "{} {k}={v}",
                req.path
            );
        }
    }
    // Same user, same address, same secret: the same values (what makes
    // the count fleet-wide); another address changes only its limits.
    let again = s.login_as(USER, Some("198.51.100.7"), 0, vec![Answer::Code]);
    again.assert_rc(PAM_SUCCESS);
    let second = rate_limits_of(&s.sends()[1]);
    assert_eq!(second["t2fa_user"], values["t2fa_user"]);
    assert_ne!(second["t2fa_address"], values["t2fa_address"]);
    assert_ne!(second["t2fa_user_address"], values["t2fa_user_address"]);
    // A login without PAM_RHOST names only the user's limit.
    let local = s.login_as(USER, None, 0, vec![Answer::Code]);
    local.assert_rc(PAM_SUCCESS);
    let third = rate_limits_of(&s.sends()[2]);
    assert_eq!(third.keys().collect::<Vec<_>>(), ["t2fa_user"]);
}

#[test]
fn a_send_retried_without_a_refused_locale_still_names_the_rate_limits() {
    let s = limited(3, "locale = \"xx-YY\"\n");
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_SUCCESS);
    let sends = s.sends();
    assert_eq!(sends.len(), 2, "one refused for its Locale, one retried");
    assert_eq!(
        sends[0].form.get("Locale").map(String::as_str),
        Some("xx-YY")
    );
    assert_eq!(sends[1].form.get("Locale"), None);
    assert_eq!(rate_limits_of(&sends[0]), rate_limits_of(&sends[1]));
}

/// A login refused because a bucket is full: PAM_AUTH_ERR, the user told
/// so, and a log line with Twilio's code. Returns the log.
fn told_rate_limited(s: &Setup, twilio_code: u32) -> String {
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_AUTH_ERR);
    assert_eq!(
        r.errors(),
        vec!["Too many codes were requested; try again later."],
        "{:#?}",
        r.shown
    );
    let log = s.log();
    assert!(log.contains("reason=rate_limited"), "{log}");
    assert!(log.contains(&format!("twilio_code={twilio_code}")), "{log}");
    log
}

#[test]
fn a_full_bucket_tells_the_user_and_is_auth_err_never_an_outage() {
    // retry_time 0: each login sends its own code rather than reusing one.
    let s = limited(1, "retry_time = 0\n");
    s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);
    let log = told_rate_limited(&s, 60203);
    assert_eq!(
        s.sim.deliveries().len(),
        1,
        "the refused send delivered nothing"
    );
    assert!(log.contains("event=verification_failed"), "{log}");
    assert!(
        log.contains(
            "a bucket of [rate_limits] (t2fa_user, t2fa_address, t2fa_user_address) is full"
        ),
        "{log}"
    );
    // Another user has buckets of their own.
    assert!(!log.contains(SECRET), "{log}");
}

/// Twilio's 20429 page counts configured rate limits among its causes: with
/// `[rate_limits]` set, a 20429 on a send (after the client's one retry) is
/// told like a full bucket.
#[test]
fn a_20429_with_rate_limits_is_told_like_a_full_bucket() {
    let s = limited(5, "");
    s.sim.inject(Fault::Twilio(429, 20429), 2);
    told_rate_limited(&s, 20429);
    // Without [rate_limits], the same answer is Twilio's request rate.
    let plain = Setup::sms("");
    plain.sim.inject(Fault::Twilio(429, 20429), 2);
    let r = plain.login(vec![Answer::Code]);
    r.assert_rc(PAM_AUTH_ERR);
    assert_eq!(r.errors(), vec!["Too many requests, try again shortly."]);
}

#[test]
fn a_rate_limit_twilio_does_not_have_says_to_run_apply() {
    let s = Setup::sms("");
    let text = limits(&s, 3);
    s.rewrite_config("allowed_methods = [\"sms\"]\n", |c| format!("{c}\n{text}"));
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_AUTH_ERR);
    assert!(
        s.log().contains("run `twilio-2fa rate-limits apply`"),
        "{}",
        s.log()
    );
}

/// A rate limit another application keeps on the same Verify service,
/// made straight over HTTP.
fn foreign_rate_limit(s: &Setup) {
    let c = s.sim.config();
    let base = format!("{}/v2/Services/{}/RateLimits", s.sim.url(), c.service_sid);
    let auth = basic_auth(&c.account_sid, &c.auth_token);
    let post = |url: &str, form: &[(&str, &str)]| -> serde_json::Value {
        let mut resp = agent(10)
            .post(url)
            .header("Authorization", &auth)
            .send_form(form.iter().copied())
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201);
        serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap()
    };
    let j = post(
        &base,
        &[("UniqueName", "other_app"), ("Description", "theirs")],
    );
    let rk = j["sid"].as_str().unwrap();
    post(
        &format!("{base}/{rk}/Buckets"),
        &[("Max", "9"), ("Interval", "60")],
    );
}

#[test]
fn apply_is_idempotent_applies_changes_and_deletes_only_its_own() {
    let s = Setup::sms("");
    foreign_rate_limit(&s);
    let text = limits(&s, 2);
    s.rewrite_config("allowed_methods = [\"sms\"]\n", |c| format!("{c}\n{text}"));

    let (ok, out, err) = s.cli(&["rate-limits", "apply"]);
    assert!(ok, "{out}{err}");
    for line in [
        "rate limit t2fa_user: created (by user)",
        "rate limit t2fa_user: bucket 2 per 600 s created",
        "rate limit t2fa_user: bucket 10 per 3600 s created",
        "rate limit t2fa_address: created (by rhost)",
        "rate limit t2fa_user_address: created (by user+rhost)",
        "left alone: rate limit other_app (not made by twilio-2fa)",
    ] {
        assert!(out.contains(line), "{line:?} not in:\n{out}");
    }

    // Twice: nothing to do, and nothing sent but the listing.
    let writes = |s: &Setup| {
        s.sim
            .received()
            .iter()
            .filter(|r| r.method != "GET")
            .count()
    };
    let before = writes(&s);
    let (ok, out, err) = s.cli(&["rate-limits", "apply"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("no change: the service's rate limits already match the config"),
        "{out}"
    );
    assert_eq!(writes(&s), before, "a second apply wrote to Twilio");

    // A changed max, a changed interval, a removed rate limit.
    let changed = text
        .replace("max = 2, interval = 600", "max = 3, interval = 600")
        .replace("max = 10, interval = 3600", "max = 10, interval = 7200")
        .replace(
            "[[rate_limits.limit]]\nname = \"t2fa_address\"\nkey = \"rhost\"\nbuckets = [{ max = 20, interval = 3600 }]\n",
            "",
        );
    assert!(!changed.contains("t2fa_address"), "{changed}");
    s.rewrite_config("allowed_methods = [\"sms\"]\n", |c| {
        format!("{c}\n{changed}")
    });
    let (ok, out, err) = s.cli(&["rate-limits", "apply"]);
    assert!(ok, "{out}{err}");
    for line in [
        "rate limit t2fa_user: bucket 600 s: max 2 -> 3",
        "rate limit t2fa_user: bucket 10 per 3600 s -> 10 per 7200 s",
        "rate limit t2fa_address: deleted (no longer in the config)",
        "left alone: rate limit other_app (not made by twilio-2fa)",
    ] {
        assert!(out.contains(line), "{line:?} not in:\n{out}");
    }
    let (ok, out, err) = s.cli(&["rate-limits", "apply"]);
    assert!(ok && out.contains("no change"), "{out}{err}");

    // What Twilio has now.
    let (ok, out, err) = s.cli(&["rate-limits", "show"]);
    assert!(ok, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    let find = |prefix: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix:?} not in:\n{out}"))
    };
    let user = find("rate limit t2fa_user (RK");
    assert!(
        lines[user].ends_with(": pam-twilio-2fa: by user [in the config]"),
        "{out}"
    );
    assert!(lines[user + 1].ends_with(": max 3 per 600 s"), "{out}");
    assert!(lines[user + 2].ends_with(": max 10 per 7200 s"), "{out}");
    let other = find("rate limit other_app (RK");
    assert!(
        lines[other].ends_with(": theirs [not made by twilio-2fa]"),
        "{out}"
    );
    assert!(lines[other + 1].ends_with(": max 9 per 60 s"), "{out}");
    assert!(!out.contains("t2fa_address"), "{out}");

    // The whole section gone: what apply made goes, the rest stays.
    s.rewrite_config("allowed_methods = [\"sms\"]\n", |c| c);
    let (ok, out, err) = s.cli(&["rate-limits", "apply"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("rate limit t2fa_user: deleted (no longer in the config)"),
        "{out}"
    );
    assert!(
        out.contains("rate limit t2fa_user_address: deleted"),
        "{out}"
    );
    let (_, out, _) = s.cli(&["rate-limits", "show"]);
    assert!(out.starts_with("rate limit other_app (RK"), "{out}");
    assert_eq!(out.lines().count(), 2, "{out}");
}

#[test]
fn check_config_refuses_bad_rate_limits_with_one_clear_line() {
    let s = Setup::sms("");
    let secret = s.lab.dir.join("rate_limits.secret");
    s.lab.write_private(&secret, SECRET).unwrap();
    let short = s.lab.dir.join("short.secret");
    s.lab.write_private(&short, "too-short").unwrap();
    let head =
        |file: &std::path::Path| format!("[rate_limits]\nsecret_file = \"{}\"\n", file.display());
    let limit = |name: &str, key: &str, buckets: &str| {
        format!("[[rate_limits.limit]]\nname = \"{name}\"\nkey = \"{key}\"\nbuckets = {buckets}\n")
    };
    let ok_bucket = "[{ max = 3, interval = 600 }]";
    let cases = [
        (
            format!("{}{}", head(&secret), limit("alice@example.com", "user", ok_bucket)),
            "rate_limits.limit[1].name: must be 1 to 64 letters, digits",
        ),
        (
            format!("{}{}{}", head(&secret), limit("a", "user", ok_bucket), limit("a", "rhost", ok_bucket)),
            "rate_limits.limit[2].name: \"a\" is declared twice",
        ),
        (
            format!("{}{}", head(&secret), limit("a", "user", "[{ max = 0, interval = 600 }]")),
            "rate_limits.limit[1].buckets: max must be between 1 and 100000 (got 0)",
        ),
        (
            format!("{}{}", head(&secret), limit("a", "user", "[{ max = 3, interval = 90000 }]")),
            "rate_limits.limit[1].buckets: interval must be between 1 and 86400 seconds (got 90000)",
        ),
        (
            format!(
                "{}{}",
                head(&secret),
                limit("a", "user", "[{ max = 3, interval = 600 }, { max = 5, interval = 600 }]")
            ),
            "two buckets with interval 600",
        ),
        (
            format!("{}{}", head(&secret), limit("a", "user", "[]")),
            "rate_limits.limit[1].buckets: give at least one bucket",
        ),
        (
            format!("{}{}", head(&secret), limit("a", "phone", ok_bucket)),
            "unknown variant `phone`",
        ),
        (
            format!("[rate_limits]\n{}", limit("a", "user", ok_bucket)),
            "rate_limits.secret_file: missing",
        ),
        (
            format!("{}{}", head(&short), limit("a", "user", ok_bucket)),
            "rate_limits.secret_file: the secret must be at least 32 characters",
        ),
        (head(&secret), "rate_limits: declare at least one [[rate_limits.limit]]"),
    ];
    for (text, want) in cases {
        s.rewrite_config("allowed_methods = [\"sms\"]\n", |c| format!("{c}\n{text}"));
        let (ok, out, err) = twilio_2fa(&["check-config", s.lab.config.to_str().unwrap()]);
        assert!(!ok, "accepted:\n{text}\n{out}");
        assert!(err.contains(want), "{want:?} not in {err:?}\n{text}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    // And a good one is summarised.
    let good = format!("{}{}", head(&secret), limit("t2fa_user", "user", ok_bucket));
    s.rewrite_config("allowed_methods = [\"sms\"]\n", |c| format!("{c}\n{good}"));
    let (ok, out, err) = twilio_2fa(&["check-config", s.lab.config.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("rate_limits      t2fa_user (by user: 3 per 600 s)"),
        "{out}"
    );
    assert!(!out.contains(SECRET), "{out}");
}
