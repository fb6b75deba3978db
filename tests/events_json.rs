//! `event_format = "json"`: one JSON object per line, in the event log and
//! in syslog, with the guarantees of the text format (no secrets, masked
//! numbers, no forged fields or lines), through the real libpam.

mod common;
mod reexec;

use common::*;
use pam_twilio_2fa::pam_client::*;
use pam_twilio_2fa::simulator::{SimConfig, DEFAULT_AUTH_TOKEN};
use reexec::ChildLogin;
use serde::de::{Deserializer, MapAccess, Visitor};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

const JSON: &str = "allowed_methods = [\"sms\"]\nevent_format = \"json\"\n";

/// One line's keys and values, in the order written; every value must be
/// a string (a number or an object would fail to parse here).
#[derive(Debug)]
struct Pairs(Vec<(String, String)>);

impl<'de> serde::Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Pairs, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Pairs;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Pairs, A::Error> {
                let mut out = Vec::new();
                while let Some(kv) = m.next_entry::<String, String>()? {
                    out.push(kv);
                }
                Ok(Pairs(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl Pairs {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// Every line of `text` as one object: `time`, `level`, then `event` or
/// `msg`, no key twice.
#[track_caller]
fn objects(text: &str) -> Vec<Pairs> {
    text.lines()
        .map(|line| {
            let p: Pairs =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: not JSON: {line}"));
            let keys = p.keys();
            assert!(keys.len() >= 3, "{line}");
            assert_eq!(keys[..2], ["time", "level"], "{line}");
            assert!(["event", "msg"].contains(&keys[2]), "{line}");
            let mut unique = keys.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), keys.len(), "a key twice: {line}");
            let time = p.get("time").unwrap();
            assert!(time.len() == 20 && time.ends_with('Z'), "{line}");
            p
        })
        .collect()
}

/// The first object with `event` = `name`.
#[track_caller]
fn event<'a>(all: &'a [Pairs], name: &str) -> &'a Pairs {
    all.iter()
        .find(|p| p.get("event") == Some(name))
        .unwrap_or_else(|| panic!("no {name} in {all:#?}"))
}

#[test]
fn a_json_login_logs_one_object_per_event_without_secrets() {
    let s = Setup::new(JSON);
    s.login(vec![Answer::WrongCode, Answer::Code])
        .assert_rc(PAM_SUCCESS);
    let log = s.lab.events();
    let all = objects(&log);
    let sent = event(&all, "verification_sent");
    assert_eq!(sent.get("level"), Some("info"));
    assert_eq!(sent.get("user"), Some(USER));
    assert_eq!(sent.get("method"), Some("sms"));
    assert_eq!(sent.get("to"), Some("+1******2671"));
    assert_eq!(sent.get("service"), Some("t2fa-test"));
    assert_eq!(sent.get("rhost"), Some("192.0.2.10"));
    let sid = sent.get("sid").expect("sid");
    assert!(sid.starts_with("VE"), "{sid}");
    let failed = event(&all, "verification_failed");
    assert_eq!(failed.get("reason"), Some("wrong_code"));
    assert_eq!(failed.get("attempt"), Some("1/5"));
    assert_eq!(event(&all, "verification_success").get("sid"), Some(sid));
    let changed = event(&all, "verification_status_changed");
    assert_eq!(changed.get("status"), Some("approved"));
    // The fields and their order are the text format's.
    assert_eq!(
        sent.keys(),
        ["time", "level", "event", "user", "method", "to", "sid", "service", "rhost"]
    );
    assert!(!log.contains(DEFAULT_AUTH_TOKEN), "token logged:\n{log}");
    assert!(!log.contains("2015552671"), "full number logged:\n{log}");
    for d in s.sim.deliveries() {
        assert!(!log.contains(&d.code), "code logged:\n{log}");
    }
}

#[test]
fn hostile_names_and_hosts_cannot_forge_json_fields_or_lines() {
    let s = Setup::new(JSON);
    let rhost =
        "192.0.2.1\",\"user\":\"admin\"}\n{\"event\":\"verification_success\",\"x\":\"\u{1b}[2J\\";
    s.login_as(USER, Some(rhost), 0, vec![Answer::Code])
        .assert_rc(PAM_SUCCESS);
    let user = "eve\"}{\"event\":\"verification_success\",\"user\":\"root\"}\r\n\t\u{7f}\u{85}";
    s.login_as(user, Some(rhost), 0, vec![])
        .assert_rc(PAM_USER_UNKNOWN);
    let log = s.lab.events();
    assert!(!log.chars().any(|c| c.is_control() && c != '\n'), "{log:?}");
    let all = objects(&log);
    // Exactly the lines the logins wrote: sent, success, approved; unknown user.
    let names: Vec<_> = all.iter().filter_map(|p| p.get("event")).collect();
    assert_eq!(
        names,
        [
            "verification_sent",
            "verification_success",
            "verification_status_changed",
            "user_unknown"
        ],
        "{log}"
    );
    assert_eq!(event(&all, "verification_sent").get("rhost"), Some(rhost));
    assert_eq!(event(&all, "verification_sent").get("user"), Some(USER));
    let unknown = event(&all, "user_unknown");
    assert_eq!(unknown.get("user"), Some(user));
    assert_eq!(unknown.get("level"), Some("warning"));
    assert_eq!(unknown.keys(), ["time", "level", "event", "user"]);
}

#[test]
fn the_cli_writes_its_events_in_the_configured_format() {
    let s = Setup::new(JSON);
    let (ok, _, err) = s.cli(&["unlock", USER]);
    assert!(ok, "{err}");
    let all = objects(&s.lab.events());
    let unlocked = event(&all, "unlocked");
    assert_eq!(unlocked.get("user"), Some(USER));
    let by = std::env::var("SUDO_USER").unwrap_or_else(|_| "root".into());
    assert_eq!(unlocked.get("by"), Some(by.as_str()));
}

#[test]
fn a_bad_event_format_is_refused_with_the_key_named() {
    let s = Setup::sms("event_format = \"xml\"\n");
    let (ok, _, err) = twilio_2fa(&["check-config", s.lab.config.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("event_format: \"xml\" is not an event format; use \"text\" or \"json\""),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // A login under it fails closed, as for any invalid config.
    s.login(vec![Answer::Code]).assert_rc(PAM_SERVICE_ERR);
    assert!(s.sim.received().is_empty());
}

#[test]
fn the_default_format_stays_text() {
    let s = Setup::sms("");
    s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);
    let log = s.lab.events();
    assert!(!log.is_empty());
    for line in log.lines() {
        assert!(line.starts_with("time="), "{line}");
        assert!(line.contains(" level=info event="), "{line}");
    }
    let (ok, out, err) = twilio_2fa(&["check-config", s.lab.config.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("events           text (syslog and "), "{out}");
}

// ---- syslog ------------------------------------------------------------------

/// Not a test of its own: the child side of the test below (a no-op unless
/// it re-executed this binary to run it).
#[test]
#[ignore = "the child process of the syslog test in this file"]
fn child_login_with_test_syslog() {
    let Some(req) = reexec::requested() else {
        return;
    };
    let (socket, scratch) = reexec::test_syslog_paths();
    use_as_dev_log(&socket, &scratch);
    req.run();
}

/// The module's syslog messages (after the `pam_twilio_2fa[PID]: ` header)
/// from one login run as `user` in a child whose /dev/log is ours.
fn syslog_of_login(user: &str) -> Vec<String> {
    let (s, _outbox_dir, outbox) = Setup::with_outbox(SimConfig::default(), JSON);
    let socket = s.lab.dir.join("log");
    let daemon = UnixDatagram::bind(&socket).expect("bind syslog socket");
    let login = ChildLogin {
        confdir: &s.lab.confdir,
        service: SERVICE,
        user,
        outbox: &outbox,
        right_code: true,
        ruid: None,
    };
    let end = reexec::spawn(
        &["unshare", "-m", "--propagation", "private"],
        "child_login_with_test_syslog",
        &login,
        &reexec::test_syslog_env(&socket, &s.lab.dir),
    )
    .finish(60);
    assert!(end.pam_rc().is_some(), "{end:#?}");
    // The child has ended: all its datagrams are queued.
    daemon
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut messages = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = daemon.recv(&mut buf) {
        let line = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(!line.contains('\n'), "{line:?}");
        if let Some((header, message)) = line.split_once("]: ") {
            if header.contains("pam_twilio_2fa[") {
                assert!(header.starts_with('<'), "{line}");
                messages.push(message.to_string());
            }
        }
    }
    // The same objects as the event log, line for line.
    assert_eq!(messages.join("\n") + "\n", s.lab.events());
    messages
}

#[test]
fn syslog_gets_the_same_json_objects() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "needs root (mount namespace)"
    );
    let messages = syslog_of_login(USER);
    let all = objects(&messages.join("\n"));
    let sent = event(&all, "verification_sent");
    assert_eq!(sent.get("to"), Some("+1******2671"));
    event(&all, "verification_success");
    let joined = messages.join("\n");
    assert!(!joined.contains(DEFAULT_AUTH_TOKEN));
    assert!(!joined.contains("2015552671"));

    let hostile = "mallory\"}\n<86>Nov 30 00:00:00 pam_twilio_2fa[1]: {\"event\":\"x\"}";
    let messages = syslog_of_login(hostile);
    let all = objects(&messages.join("\n"));
    assert_eq!(all.len(), 1, "{messages:#?}");
    assert_eq!(event(&all, "user_unknown").get("user"), Some(hostile));
}
