//! One login through pamtester and a real service file under /etc/pam.d,
//! exactly as an admin would try the module by hand. Needs root.

mod common;

use common::*;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn pamtester(service: &str, answer_after_send: Option<&Setup>) -> (bool, String, String) {
    // A dead proxy in every variable ureq would read: the module must ignore
    // them all (under sudo the environment is the user's to set).
    let mut cmd = Command::new("pamtester");
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env(var, "http://127.0.0.1:9");
    }
    let mut child = cmd
        .args([
            "-v",
            "-I",
            "rhost=192.0.2.20",
            service,
            USER,
            "authenticate",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pamtester is installed by .ci/setup");
    let mut stdin = child.stdin.take().unwrap();
    if let Some(s) = answer_after_send {
        let deadline = Instant::now() + Duration::from_secs(20);
        while s.sim.deliveries().is_empty() {
            assert!(Instant::now() < deadline, "no code was sent");
            std::thread::sleep(Duration::from_millis(20));
        }
        writeln!(stdin, "{}", s.sim.deliveries()[0].code).unwrap();
    }
    drop(stdin);
    outcome(child.wait_with_output().unwrap())
}

#[test]
fn pamtester_with_a_service_file_in_etc_pam_d() {
    let s = Setup::sms("");
    let etc = EtcService::new(&s, "pamtester");
    let service = etc.name.clone();

    let (ok, out, err) = pamtester(&service, Some(&s));
    assert!(ok, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains("Code sent by text message to (XXX) XXX-2671. Enter code ("),
        "{err}"
    );
    assert!(out.contains("successfully authenticated"), "{out}");
    assert!(s.lab.events().contains("rhost=192.0.2.20"));

    // No answer (EOF at the prompt): a conversation error, not a success.
    let (ok, _, err) = pamtester(&service, None);
    assert!(!ok);
    assert!(
        err.contains("Conversation error") || err.contains("conversation"),
        "{err}"
    );
}
