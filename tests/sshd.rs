//! A real OpenSSH sshd on loopback whose PAM stack uses the module and the
//! simulator, and the real `ssh` client, as an admin would deploy it. Needs
//! root (a throw-away user, a file in /etc/pam.d) and openssh-server/-client.

mod common;

use common::sshd::{keygen, ssh_as_person, start_sshd, Answers, Sshd, COMMAND_OUTPUT};
use common::*;
use pam_twilio_2fa::simulator::SimConfig;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// sshd (common::sshd) with `AuthenticationMethods methods`.
fn start_sshd_for(s: &Setup, tag: &str, methods: &str, auth: &str) -> Sshd {
    let settings = format!("AuthenticationMethods {methods}\nMaxAuthTries 2\n");
    start_sshd(s, tag, &settings, auth)
}

/// What the client's askpass script answers.
enum Mode {
    Right,
    WrongCode,
    WrongPassword,
}

/// Runs `ssh user@127.0.0.1 echo ...` as a person (common::sshd) whose
/// answers follow `mode`. Returns (success, stdout, prompts seen).
fn ssh(
    s: &Setup,
    sshd: &Sshd,
    user: &TestUser,
    mode: Mode,
    key: Option<&Path>,
) -> (bool, String, Vec<String>) {
    let (password, code) = match mode {
        Mode::Right => (user.password.as_str(), None),
        Mode::WrongCode => (user.password.as_str(), Some("0000")),
        Mode::WrongPassword => ("not-the-password", None),
    };
    let answers = Answers { password, code };
    ssh_as_person(s, sshd, &user.name, answers, key, 60)
}

fn setup_for(user: &TestUser, tag: &str) -> Setup {
    setup_with(user, tag, None)
}

/// `setup_for` with the simulator on HTTPS, reached as "localhost", its
/// throwaway CA trusted through `ca_file` (the system store stays as it is).
fn https_setup_for(user: &TestUser, tag: &str) -> Setup {
    let ca = pam_twilio_2fa::pki::Ca::new("t2fa sshd test CA").unwrap();
    let leaf = ca.leaf(&["localhost", "127.0.0.1", "::1"]).unwrap();
    let s = setup_with(user, tag, Some(leaf));
    let ca_file = s.lab.dir.join("ca.pem");
    std::fs::write(&ca_file, &ca.cert_pem).unwrap();
    let extra = format!(
        "allowed_methods = [\"sms\"]\nca_file = \"{}\"\n",
        ca_file.display()
    );
    let (ip_url, name_url) = (s.sim.url(), s.sim.url_for("localhost"));
    assert!(name_url.starts_with("https://localhost:"));
    s.rewrite_config(&extra, |t| t.replace(&ip_url, &name_url));
    s
}

fn setup_with(user: &TestUser, tag: &str, tls: Option<pam_twilio_2fa::pki::Leaf>) -> Setup {
    let outbox = std::env::temp_dir().join(format!("t2fa-outbox-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_file(&outbox);
    let s = Setup::with_simulator(
        SimConfig {
            outbox: Some(outbox),
            tls,
            ..SimConfig::default()
        },
        "allowed_methods = [\"sms\"]\n",
    );
    s.lab.set_phone(&user.name, PHONE).unwrap();
    s
}

const PASSWORD_THEN_CODE: &str = "auth requisite pam_unix.so\nauth required MODULE";

/// Over HTTPS to the simulator, as every real login talks to Twilio.
#[test]
fn password_then_code_over_ssh() {
    let user = TestUser::new("s");
    let s = https_setup_for(&user, "pw");
    let sshd = start_sshd_for(&s, "pw", "keyboard-interactive", PASSWORD_THEN_CODE);

    let (ok, out, prompts) = ssh(&s, &sshd, &user, Mode::Right, None);
    let log = || sshd.log();
    assert!(ok, "ssh failed; prompts {prompts:?}\nsshd log:\n{}", log());
    assert_eq!(out.trim(), COMMAND_OUTPUT);
    assert!(
        prompts.iter().any(|p| p.contains("Password")),
        "{prompts:?}"
    );
    assert!(
        prompts
            .iter()
            .any(|p| p.contains("Code sent by text message to (XXX) XXX-2671. Enter code (")),
        "the client sees the module's prompt: {prompts:?}"
    );
    assert!(
        s.log()
            .contains(&format!("event=verification_success user={}", user.name)),
        "{}",
        s.log()
    );
    assert!(s.log().contains("rhost=127.0.0.1"), "{}", s.log());
    assert_eq!(s.checks().len(), 1, "the code was checked over HTTPS");
}

#[test]
fn wrong_codes_are_rejected_over_ssh() {
    let user = TestUser::new("w");
    let s = setup_for(&user, "wc");
    let sshd = start_sshd_for(&s, "wc", "keyboard-interactive", PASSWORD_THEN_CODE);
    let (ok, out, prompts) = ssh(&s, &sshd, &user, Mode::WrongCode, None);
    assert!(!ok, "logged in with a wrong code");
    assert!(!out.contains(COMMAND_OUTPUT));
    assert!(
        prompts.iter().any(|p| p.contains("Enter code")),
        "{prompts:?}"
    );
    assert!(s.log().contains("reason=wrong_code"), "{}", s.log());
}

#[test]
fn a_wrong_password_sends_no_code() {
    let user = TestUser::new("p");
    let s = setup_for(&user, "wp");
    let sshd = start_sshd_for(&s, "wp", "keyboard-interactive", PASSWORD_THEN_CODE);
    let (ok, _, prompts) = ssh(&s, &sshd, &user, Mode::WrongPassword, None);
    assert!(!ok);
    assert!(
        prompts.iter().all(|p| !p.contains("Enter code")),
        "{prompts:?}"
    );
    assert!(
        s.sim.deliveries().is_empty(),
        "a code was sent after a wrong password"
    );
    assert!(s.sim.received().is_empty());
}

#[test]
fn key_then_code_over_ssh() {
    let user = TestUser::new("k");
    let s = setup_for(&user, "key");
    // The user's key: the first factor, checked by sshd itself.
    let key = s.lab.dir.join("client_key");
    keygen(&key);
    let home = PathBuf::from(format!("/home/{}", user.name));
    let ssh_dir = home.join(".ssh");
    std::fs::create_dir_all(&ssh_dir).unwrap();
    std::fs::copy(key.with_extension("pub"), ssh_dir.join("authorized_keys")).unwrap();
    assert!(Command::new("chown")
        .args(["-R", &format!("{0}:{0}", user.name)])
        .arg(&ssh_dir)
        .status()
        .unwrap()
        .success());
    std::fs::set_permissions(&ssh_dir, std::fs::Permissions::from_mode(0o700)).unwrap();

    let sshd = start_sshd_for(
        &s,
        "key",
        "publickey,keyboard-interactive",
        "auth required MODULE",
    );
    let (ok, out, prompts) = ssh(&s, &sshd, &user, Mode::Right, Some(&key));
    assert!(ok, "prompts {prompts:?}\n{}", sshd.log());
    assert_eq!(out.trim(), COMMAND_OUTPUT);
    assert!(
        prompts.iter().all(|p| !p.contains("Password")),
        "no password with a key: {prompts:?}"
    );
    assert!(
        prompts.iter().any(|p| p.contains("Enter code")),
        "{prompts:?}"
    );

    // Without the key, keyboard-interactive alone is not enough.
    let (ok, _, _) = ssh(&s, &sshd, &user, Mode::Right, None);
    assert!(!ok);
}
