//! Contract test: the module talks to the simulator through Stoplight Prism
//! loaded with Twilio's own Verify v2 OpenAPI spec. A request that breaks the
//! spec is answered by Prism (422/401) and never reaches the simulator; an
//! answer of the simulator's that breaks the spec is reported as a violation.
//!
//! Prism is installed by `.ci/setup` (npm, @stoplight/prism-cli 5.14.2).

mod common;

use common::*;
use pam_twilio_2fa::pam_client::*;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn prism_bin() -> PathBuf {
    let p = std::env::var_os("PRISM")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/tools/prism/node_modules/.bin/prism"));
    assert!(
        p.exists(),
        "Prism not found at {} — run `bash .ci/setup` (or set PRISM)",
        p.display()
    );
    p
}

fn spec() -> PathBuf {
    let p = repo().join("../shared/twilio-oai/twilio_verify_v2.json");
    assert!(p.exists(), "Twilio's spec not found at {}", p.display());
    p
}

struct Prism {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Prism {
    fn start(upstream: &str, log: PathBuf) -> Prism {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(prism_bin())
            .args([
                "proxy",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "--errors",
            ])
            .arg(spec())
            .arg(upstream)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start prism");
        let prism = Prism { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(90);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "prism did not start:\n{}",
                prism.output()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        prism
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Prism {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The module's config, with verify_url pointing at Prism instead of the simulator.
fn through(s: &Setup, prism: &Prism, extra: &str) {
    let sim_url = s.sim.url();
    let prism_url = prism.url();
    s.rewrite_config(extra, |t| {
        t.replace(
            &format!("verify_url = \"{sim_url}\""),
            &format!("verify_url = \"{prism_url}\""),
        )
    });
}

#[test]
fn send_check_resend_and_cancel_conform_to_twilios_verify_spec() {
    let s = Setup::sms("");
    let prism = Prism::start(&s.sim.url(), s.lab.dir.join("prism.log"));

    // Send, a wrong check, a right check.
    through(
        &s,
        &prism,
        "allowed_methods = [\"sms\"]\nservice_name = \"{service}\"\n",
    );
    s.login(vec![Answer::WrongCode, Answer::Code])
        .assert_rc(PAM_SUCCESS);

    // Resend: cancel the old verification, send a new one, check it.
    through(&s, &prism, "allowed_methods = [\"call\"]\nretry_time = 0\n");
    s.login(vec![text("r"), Answer::Code])
        .assert_rc(PAM_SUCCESS);

    // Attempts used up: five wrong checks, then the verification is canceled.
    through(&s, &prism, "allowed_methods = [\"whatsapp\"]\n");
    s.login(vec![Answer::WrongCode; 5]).assert_rc(PAM_MAXTRIES);

    let log = prism.output();
    let received = s.sim.received();
    let kinds = |suffix: &str| received.iter().filter(|r| r.path.ends_with(suffix)).count();
    // 4 sends (1 + 2 with the resend + 1), 2 + 1 + 5 checks, 2 cancels:
    // every one reached the simulator.
    assert_eq!(kinds("/Verifications"), 4, "{log}");
    assert_eq!(kinds("/VerificationCheck"), 8, "{log}");
    assert_eq!(
        received
            .iter()
            .filter(|r| r.form.contains_key("Status"))
            .count(),
        2,
        "{log}"
    );
    assert_eq!(
        log.matches("Forwarding \"post\"").count(),
        received.len(),
        "{log}"
    );
    for bad in ["Violation", "UNPROCESSABLE_ENTITY", "UNAUTHORIZED", "✖"] {
        assert!(!log.contains(bad), "Prism reported {bad}:\n{log}");
    }
}

#[test]
fn prism_rejects_a_request_that_breaks_the_spec() {
    // The check above can only fail if Prism really validates: prove it does.
    let s = Setup::sms("");
    let prism = Prism::start(&s.sim.url(), s.lab.dir.join("prism.log"));
    let agent = pam_twilio_2fa::twilio_client::agent(10);
    let resp = agent
        .post(format!(
            "{}/v2/Services/VA00000000000000000000000000000001/Verifications",
            prism.url()
        ))
        .header(
            "Authorization",
            pam_twilio_2fa::twilio_client::basic_auth("AC00000000000000000000000000000001", "x"),
        )
        .send_form([("Channel", "sms")])
        .unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    assert!(s.sim.received().is_empty());
}
