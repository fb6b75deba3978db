//! Logins over HTTPS through the real libpam: the roots trusted are the
//! system store's (as update-ca-certificates maintains it) or `ca_file`'s,
//! never the caller's SSL_CERT_FILE / SSL_CERT_DIR; every TLS failure is
//! PAM_AUTHINFO_UNAVAIL with nothing sent and one log line saying why.
//!
//! Tests that add a CA to the system store (root only) hold a process-wide
//! lock, and the CA is removed again even when the test fails. The store is
//! global: run this file alone, not beside other tests that touch /etc.

mod common;
mod reexec;

use common::*;
use pam_twilio_2fa::lab::Lab;
use pam_twilio_2fa::pam_client::{code_name, PAM_AUTHINFO_UNAVAIL, PAM_SUCCESS};
use pam_twilio_2fa::pki::{Ca, Leaf};
use pam_twilio_2fa::simulator::{SimConfig, Simulator};
use reexec::ChildLogin;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

/// Where update-ca-certificates takes local CAs from.
const LOCAL_CAS: &str = "/usr/local/share/ca-certificates";
/// The bundle it writes (Debian, Ubuntu).
const BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

static STORE: Mutex<()> = Mutex::new(());

/// A CA in the system store for as long as this lives; removed (and the
/// bundle rebuilt) when dropped, also when the test panics.
struct StoreCa {
    file: PathBuf,
    _lock: MutexGuard<'static, ()>,
}

impl StoreCa {
    fn add(ca: &Ca) -> StoreCa {
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "the system CA store needs root"
        );
        let lock = STORE.lock().unwrap_or_else(|e| e.into_inner());
        let file = PathBuf::from(LOCAL_CAS).join(format!("t2fa-test-{}.crt", std::process::id()));
        std::fs::create_dir_all(LOCAL_CAS).unwrap();
        let guard = StoreCa { file, _lock: lock };
        std::fs::write(&guard.file, &ca.cert_pem).unwrap();
        update_store(&[]);
        let bundle = std::fs::read_to_string(BUNDLE).unwrap();
        let body = ca.cert_pem.lines().nth(1).unwrap();
        assert!(
            bundle.contains(body),
            "update-ca-certificates did not add the CA"
        );
        guard
    }
}

impl Drop for StoreCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
        update_store(&["--fresh"]);
    }
}

fn update_store(args: &[&str]) {
    let out = Command::new("update-ca-certificates")
        .args(args)
        .output()
        .expect("update-ca-certificates (package ca-certificates)");
    assert!(
        out.status.success(),
        "update-ca-certificates: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A setup whose simulator serves HTTPS with `leaf`, reached by the name
/// "localhost"; `extra` config keys.
fn https_setup(leaf: Leaf, extra: &str) -> Setup {
    let sim = SimConfig {
        tls: Some(leaf),
        ..SimConfig::default()
    };
    by_host_name(sim, extra)
}

/// A setup for `sim` with SMS only, `extra` keys, and the simulator's URL
/// by host name.
fn by_host_name(sim: SimConfig, extra: &str) -> Setup {
    let extra = format!("allowed_methods = [\"sms\"]\n{extra}");
    let s = Setup::with_simulator(sim, &extra);
    let (ip_url, name_url) = (s.sim.url(), s.sim.url_for("localhost"));
    s.rewrite_config(&extra, |t| t.replace(&ip_url, &name_url));
    s
}

/// A plain-HTTP simulator, with the config saying https:// to its port.
fn plain_http_on_https_url() -> Setup {
    let s = Setup::sms("");
    let (plain, tls) = (s.sim.url(), s.sim.url().replace("http://", "https://"));
    s.rewrite_config("allowed_methods = [\"sms\"]\n", |t| t.replace(&plain, &tls));
    s
}

/// A root-only `ca_file` in the lab holding `pem`.
fn write_ca_file(s: &Setup, pem: &str) -> PathBuf {
    let path = s.lab.dir.join("ca.pem");
    std::fs::write(&path, pem).unwrap();
    path
}

/// The login fails as an outage, nothing reaches "Twilio", and the log
/// names the TLS failure and its reason.
#[track_caller]
fn assert_tls_refused(s: &Setup, reason: &str) {
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_AUTHINFO_UNAVAIL);
    assert!(s.sim.received().is_empty(), "sent: {:?}", s.sim.received());
    assert!(s.sim.deliveries().is_empty());
    let log = s.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("TLS to ")).collect();
    assert_eq!(lines.len(), 1, "one TLS line wanted:\n{log}");
    assert!(lines[0].contains(reason), "no {reason:?} in:\n{log}");
    assert!(
        lines[0].contains("\"error\"") || lines[0].contains("error"),
        "{log}"
    );
}

#[test]
fn a_login_over_https_trusts_a_ca_added_to_the_system_store() {
    let ca = Ca::new("t2fa test store CA").unwrap();
    let _store = StoreCa::add(&ca);
    let s = https_setup(ca.leaf(&["localhost", "127.0.0.1", "::1"]).unwrap(), "");
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(s.sends().len(), 1);
    assert_eq!(s.checks().len(), 1);
    assert!(s.sim.url_for("localhost").starts_with("https://localhost:"));
}

#[test]
fn tls_failures_are_an_outage_with_nothing_sent_and_one_log_line() {
    let ca = Ca::new("t2fa test store CA").unwrap();
    let _store = StoreCa::add(&ca);
    let names = ["localhost", "127.0.0.1", "::1"];

    let stranger = Ca::new("t2fa test unknown CA").unwrap();
    let s = https_setup(stranger.leaf(&names).unwrap(), "");
    assert_tls_refused(
        &s,
        "TLS to localhost failed: certificate signed by an unknown CA (UnknownIssuer)",
    );

    let s = https_setup(ca.leaf(&["other.example"]).unwrap(), "");
    assert_tls_refused(&s, "certificate is for another host name (NotValidForName)");

    let s = https_setup(ca.expired_leaf(&names).unwrap(), "");
    assert_tls_refused(&s, "certificate has expired (Expired)");

    let s = plain_http_on_https_url();
    assert_tls_refused(&s, "plain HTTP on an HTTPS port");

    // ca_file replaces the store: the store's CA is not trusted beside it.
    let s = https_setup(ca.leaf(&names).unwrap(), "");
    let ca_file = write_ca_file(&s, &stranger.cert_pem);
    s.rewrite_config(
        &format!(
            "allowed_methods = [\"sms\"]\nca_file = \"{}\"\n",
            ca_file.display()
        ),
        |t| t.replace(&s.sim.url(), &s.sim.url_for("localhost")),
    );
    assert_tls_refused(&s, "UnknownIssuer");
}

#[test]
fn ca_file_is_trusted_without_the_system_store() {
    let ca = Ca::new("t2fa test private CA").unwrap();
    let s = https_setup(ca.leaf(&["localhost"]).unwrap(), "");
    let ca_file = write_ca_file(&s, &ca.cert_pem);
    let extra = format!(
        "allowed_methods = [\"sms\"]\nca_file = \"{}\"\n",
        ca_file.display()
    );
    s.rewrite_config(&extra, |t| {
        t.replace(&s.sim.url(), &s.sim.url_for("localhost"))
    });
    s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);
    assert_eq!(s.checks().len(), 1);

    // A ca_file others may write is refused (fail closed). The roots are
    // read once the ClientHello is out: the handshake goes no further, so
    // no request (no credentials, no number) is sent.
    let before = s.sim.received().len();
    let handshakes = s.sim.stats().tls_handshakes;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&ca_file, std::fs::Permissions::from_mode(0o666)).unwrap();
    s.login(vec![Answer::Code]).assert_rc(PAM_AUTHINFO_UNAVAIL);
    assert_eq!(s.sim.received().len(), before);
    assert_eq!(s.sim.stats().tls_handshakes, handshakes);
    assert!(s.log().contains("cannot load the CA roots"), "{}", s.log());
}

/// Not a test of its own: the child side of the SSL_CERT_FILE test.
#[test]
#[ignore = "the child process of the other tests in this file"]
fn child_login() {
    if let Some(req) = reexec::requested() {
        req.run();
    }
}

/// Runs the login in a child process whose environment names `rogue` as
/// SSL_CERT_FILE and its folder as SSL_CERT_DIR.
fn login_with_rogue_env(s: &Setup, outbox: &Path, rogue: &Path) -> i32 {
    let login = ChildLogin {
        confdir: &s.lab.confdir,
        service: SERVICE,
        user: USER,
        outbox,
        right_code: true,
        ruid: None,
    };
    let env = [
        ("SSL_CERT_FILE", rogue.display().to_string()),
        (
            "SSL_CERT_DIR",
            rogue.parent().unwrap().display().to_string(),
        ),
    ];
    let end = reexec::spawn(&[], "child_login", &login, &env).finish(60);
    end.pam_rc()
        .unwrap_or_else(|| panic!("no PAM code from the child: {end:?}"))
}

#[test]
fn ssl_cert_file_in_the_callers_environment_changes_nothing() {
    let rogue = Ca::new("t2fa test rogue CA").unwrap();
    let dir = Lab::new("t2fa-rogue").unwrap();
    let rogue_file = dir.dir.join("rogue.pem");
    std::fs::write(&rogue_file, &rogue.cert_pem).unwrap();
    // OpenSSL-style hashed names too, for SSL_CERT_DIR readers.
    let _ = Command::new("openssl")
        .args(["rehash", &dir.dir.display().to_string()])
        .output();
    let outbox = dir.dir.join("outbox");
    let names = ["localhost", "127.0.0.1", "::1"];

    // A server the rogue CA vouches for is refused.
    let sim = SimConfig {
        outbox: Some(outbox.clone()),
        tls: Some(rogue.leaf(&names).unwrap()),
        ..SimConfig::default()
    };
    let s = by_host_name(sim, "");
    let rc = login_with_rogue_env(&s, &outbox, &rogue_file);
    assert_eq!(code_name(rc), code_name(PAM_AUTHINFO_UNAVAIL));
    assert!(s.sim.received().is_empty());

    // The store's CA still works with the rogue variables set.
    let ca = Ca::new("t2fa test store CA").unwrap();
    let _store = StoreCa::add(&ca);
    let sim = SimConfig {
        outbox: Some(outbox.clone()),
        tls: Some(ca.leaf(&names).unwrap()),
        ..SimConfig::default()
    };
    let s = by_host_name(sim, "");
    let rc = login_with_rogue_env(&s, &outbox, &rogue_file);
    assert_eq!(code_name(rc), code_name(PAM_SUCCESS));
    assert_eq!(s.checks().len(), 1);
}

/// The simulator's own HTTPS, as the CLI's `--tls` makes it, checked with
/// the module's TLS client code rather than PAM: the printed CA works.
#[test]
fn simulator_tls_serves_the_loopback_names() {
    let ca = Ca::new("t2fa test CA").unwrap();
    let sim = Simulator::start(
        "127.0.0.1:0",
        SimConfig {
            tls: Some(ca.leaf(&["localhost", "127.0.0.1", "::1"]).unwrap()),
            ..SimConfig::default()
        },
    )
    .unwrap();
    assert!(sim.url().starts_with("https://127.0.0.1:"));
    let bundle = pam_twilio_2fa::ca_store::Bundle::from_pem("ca".into(), ca.cert_pem.clone());
    let trust = pam_twilio_2fa::https::Trust::of(bundle.unwrap());
    let agent = pam_twilio_2fa::twilio_client::agent_with(5, None, Some(trust.into()));
    for url in [sim.url(), sim.url_for("localhost")] {
        let r = agent
            .get(&format!("{url}/_simulator/stats"))
            .call()
            .unwrap();
        assert_eq!(r.status(), 200, "{url}");
    }
}

/// `twilio-2fa check-config` names the roots HTTPS would trust, and refuses
/// a ca_file a login would refuse.
#[test]
fn check_config_reports_the_ca_roots() {
    let ca = Ca::new("t2fa test check-config CA").unwrap();
    let s = https_setup(ca.leaf(&["localhost"]).unwrap(), "");
    let ca_file = write_ca_file(&s, &ca.cert_pem);
    let config = s.lab.config.display().to_string();
    let extra = format!(
        "allowed_methods = [\"sms\"]\nca_file = \"{}\"\n",
        ca_file.display()
    );
    s.rewrite_config(&extra, |t| t);
    let (ok, out, err) = twilio_2fa(&["check-config", &config]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&format!("CA roots for HTTPS: {}", ca_file.display())),
        "{out}"
    );

    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&ca_file, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (ok, out, err) = twilio_2fa(&["check-config", &config]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("cannot load the CA roots for HTTPS: ca_file"),
        "{err}"
    );
}

/// The benchmark's counters: one TLS handshake per API connection (the
/// control connections are not counted), and each connection's accept,
/// handshake end and first request byte on the host's monotonic clock,
/// in that order.
#[test]
fn simulator_counts_tls_handshakes_and_times_connections() {
    use pam_twilio_2fa::simulator::monotonic_ns;
    let ca = Ca::new("t2fa test CA").unwrap();
    let sim = Simulator::start(
        "127.0.0.1:0",
        SimConfig {
            tls: Some(ca.leaf(&["127.0.0.1"]).unwrap()),
            ..SimConfig::default()
        },
    )
    .unwrap();
    let bundle = pam_twilio_2fa::ca_store::Bundle::from_pem("ca".into(), ca.cert_pem.clone());
    let trust = pam_twilio_2fa::https::Trust::of(bundle.unwrap());
    let agent = pam_twilio_2fa::twilio_client::agent_with(5, None, Some(trust.into()));
    let before = monotonic_ns();
    let api = format!("{}/v2/PhoneNumbers/%2B12015552671", sim.url());
    let r = agent.get(&api).call().unwrap();
    assert_eq!(r.status(), 401, "unauthorized, but an API request");
    let r = agent
        .get(&format!("{}/_simulator/stats", sim.url()))
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    let after = monotonic_ns();

    let st = sim.stats();
    assert_eq!((st.connections, st.tls_handshakes, st.requests), (1, 1, 1));
    let times = sim.conn_times();
    assert_eq!(times.len(), 1, "{times:?}");
    let t = &times[0];
    let tls_done = t.tls_done_ns.expect("a TLS connection");
    assert!(before <= t.accepted_ns, "{t:?}");
    let hello = t.hello_ns.expect("a TLS connection");
    assert!(t.accepted_ns <= hello && hello <= tls_done, "{t:?}");
    assert!(tls_done <= t.first_byte_ns, "{t:?}");
    assert!(t.first_byte_ns <= after, "{t:?}");
    assert_eq!(t.first_path, "/v2/PhoneNumbers/%2B12015552671");
}
