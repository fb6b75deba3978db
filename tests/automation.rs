//! Automation accounts next to people, through a real OpenSSH sshd on
//! loopback and the real `sftp`, `scp` and `ssh` clients: the two documented
//! ways (docs/automation.md) let a key-only transfer in without a code, while
//! a person in the same sshd is still asked for one. Needs root (throw-away
//! users and groups, a file in /etc/pam.d, all removed when the test ends)
//! and openssh-server/-client.

mod common;

use common::sshd::{
    client_options, keygen, ssh_as_person, start_sshd, Answers, Sshd, COMMAND_OUTPUT,
};
use common::*;
use pam_twilio_2fa::simulator::SimConfig;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// How long a client may take before the test calls it a hang.
const CLIENT_DEADLINE: u64 = 90;

/// A throw-away group, removed when dropped (declare it before the users in
/// it, so they are removed first).
struct TestGroup {
    name: String,
}

impl TestGroup {
    fn new(tag: &str) -> TestGroup {
        let name = format!("t2fag{tag}{}", std::process::id());
        let _ = Command::new("groupdel").arg(&name).output();
        assert!(
            Command::new("groupadd")
                .arg(&name)
                .status()
                .unwrap()
                .success(),
            "groupadd {name}"
        );
        TestGroup { name }
    }

    fn add(&self, user: &TestUser) {
        assert!(Command::new("usermod")
            .args(["-aG", &self.name, &user.name])
            .status()
            .unwrap()
            .success());
    }
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        let _ = Command::new("groupdel").arg(&self.name).output();
    }
}

/// A key pair for `user`, its public half in ~/.ssh/authorized_keys.
fn give_key(s: &Setup, user: &TestUser) -> PathBuf {
    let key = s.lab.dir.join(format!("key-{}", user.name));
    keygen(&key);
    let ssh_dir = PathBuf::from(format!("/home/{}/.ssh", user.name));
    std::fs::create_dir_all(&ssh_dir).unwrap();
    std::fs::copy(key.with_extension("pub"), ssh_dir.join("authorized_keys")).unwrap();
    assert!(Command::new("chown")
        .args(["-R", &format!("{0}:{0}", user.name)])
        .arg(&ssh_dir)
        .status()
        .unwrap()
        .success());
    std::fs::set_permissions(&ssh_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    key
}

/// Runs a client as a job with no terminal and nothing to answer prompts
/// with (no SSH_ASKPASS, no DISPLAY): cron, CI, Ansible. Returns
/// (success, stdout, stderr).
fn unattended(program: &str, args: &[String]) -> (bool, String, String) {
    let mut cmd = Command::new("setsid");
    cmd.arg("-w")
        .arg(program)
        .args(args)
        .env_remove("SSH_ASKPASS")
        .env_remove("SSH_ASKPASS_REQUIRE")
        .env_remove("DISPLAY")
        .stdin(Stdio::null());
    run_with_deadline(&mut cmd, CLIENT_DEADLINE)
}

/// Bytes no text conversion would leave alone.
fn payload() -> Vec<u8> {
    (0..70_000u32).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// `sftp -b` uploading a file as `user`; `pre` options go first (ssh keeps
/// the first value it gets, and `-b` adds `-oBatchMode=yes` after them).
/// Returns (success, stderr, where the file should arrive).
fn sftp_put(
    s: &Setup,
    sshd: &Sshd,
    user: &TestUser,
    key: &Path,
    pre: &[&str],
) -> (bool, String, PathBuf) {
    let src = s.lab.dir.join(format!("upload-{}", user.name));
    std::fs::write(&src, payload()).unwrap();
    let batch = s.lab.dir.join(format!("batch-{}", user.name));
    std::fs::write(&batch, format!("put {} upload.bin\n", src.display())).unwrap();
    let mut args: Vec<String> = pre.iter().map(|a| a.to_string()).collect();
    args.extend(client_options(Some(key)));
    args.extend(["-P".to_string(), sshd.port.to_string(), "-b".to_string()]);
    args.push(batch.display().to_string());
    args.push(format!("{}@127.0.0.1", user.name));
    let (ok, _, err) = unattended("sftp", &args);
    let dest = PathBuf::from(format!("/home/{}/upload.bin", user.name));
    (ok, err, dest)
}

/// What the interactive client's askpass script answers to the code prompt.
enum Code {
    Right,
    Wrong,
}

/// An interactive `ssh user@127.0.0.1 echo ...` answering every prompt
/// through SSH_ASKPASS (a person at a terminal; common::sshd). Returns
/// (success, stdout, prompts seen).
fn interactive(
    s: &Setup,
    sshd: &Sshd,
    user: &TestUser,
    code: Code,
    key: Option<&Path>,
) -> (bool, String, Vec<String>) {
    let code = match code {
        Code::Right => None,
        Code::Wrong => Some("0000"),
    };
    let answers = Answers {
        password: &user.password,
        code,
    };
    ssh_as_person(s, sshd, &user.name, answers, key, CLIENT_DEADLINE)
}

/// A simulator writing each code to an outbox (for the askpass script),
/// with `extra` config, and a number on file for every user given: the
/// automation account has one too, so only the setup keeps it from a code.
fn setup_with(users: &[&TestUser], tag: &str, extra: &str) -> Setup {
    let outbox =
        std::env::temp_dir().join(format!("t2fa-outbox-auto-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_file(&outbox);
    let s = Setup::with_simulator(
        SimConfig {
            outbox: Some(outbox),
            ..SimConfig::default()
        },
        &format!("allowed_methods = [\"sms\"]\n{extra}"),
    );
    for u in users {
        s.lab.set_phone(&u.name, PHONE).unwrap();
    }
    s
}

const PASSWORD_THEN_CODE: &str = "auth requisite pam_unix.so\nauth required MODULE";

/// A person at a terminal in the same sshd: asked for the code, let in with
/// the right one, refused with a wrong one.
fn person_still_needs_the_code(s: &Setup, sshd: &Sshd, person: &TestUser, key: Option<&Path>) {
    let sends_before = s.sends().len();
    let (ok, out, prompts) = interactive(s, sshd, person, Code::Right, key);
    assert!(ok, "prompts {prompts:?}\nsshd log:\n{}", sshd.log());
    assert_eq!(out.trim(), COMMAND_OUTPUT);
    assert!(
        prompts
            .iter()
            .any(|p| p.contains("Code sent by text message to (XXX) XXX-2671. Enter code (")),
        "the person sees the code prompt: {prompts:?}"
    );
    assert_eq!(s.sends().len(), sends_before + 1, "one code was sent");
    assert!(
        s.log()
            .contains(&format!("event=verification_success user={}", person.name)),
        "{}",
        s.log()
    );

    let (ok, out, prompts) = interactive(s, sshd, person, Code::Wrong, key);
    assert!(!ok, "logged in with a wrong code");
    assert!(!out.contains(COMMAND_OUTPUT));
    assert!(
        prompts.iter().any(|p| p.contains("Enter code")),
        "{prompts:?}"
    );
    assert!(s.log().contains("reason=wrong_code"), "{}", s.log());
}

#[track_caller]
fn assert_arrived_intact(dest: &Path) {
    let got = std::fs::read(dest).unwrap_or_else(|e| panic!("{}: {e}", dest.display()));
    assert!(
        got == payload(),
        "the uploaded file differs from the original"
    );
}

/// Way 1: `Match Group` + `AuthenticationMethods publickey`. sshd never
/// starts keyboard-interactive for the group, so PAM's auth stack (and the
/// module) never runs for it: `sftp -b` in its default batch mode works.
#[test]
fn match_group_publickey_lets_sftp_in_without_a_code() {
    let group = TestGroup::new("m");
    let robot = TestUser::new("mr");
    let person = TestUser::new("mp");
    group.add(&robot);
    // Hardened as docs/automation.md says: no password, no shell.
    assert!(Command::new("usermod")
        .args(["-L", "-s", "/usr/sbin/nologin", &robot.name])
        .status()
        .unwrap()
        .success());
    let s = setup_with(&[&robot, &person], "match", "");
    let robot_key = give_key(&s, &robot);
    let sshd = start_sshd(
        &s,
        "match",
        &format!(
            "AuthenticationMethods keyboard-interactive\n\
             Match Group {}\n    AuthenticationMethods publickey\n    ForceCommand internal-sftp\n    \
             PermitTTY no\n    AllowTcpForwarding no\n    AllowAgentForwarding no\n    \
             X11Forwarding no\n    PermitTunnel no\n",
            group.name
        ),
        PASSWORD_THEN_CODE,
    );

    let (ok, err, dest) = sftp_put(&s, &sshd, &robot, &robot_key, &[]);
    assert!(ok, "sftp failed: {err}\nsshd log:\n{}", sshd.log());
    assert_arrived_intact(&dest);
    assert!(
        s.sim.received().is_empty(),
        "the simulator was asked: {:?}",
        s.sim.received()
    );
    assert!(
        !s.log().contains(&format!("user={}", robot.name)),
        "the module ran for the automation account:\n{}",
        s.log()
    );

    // With its key it gets sftp and nothing else: a command is not run.
    let (_, out, prompts) = interactive(&s, &sshd, &robot, Code::Right, Some(&robot_key));
    assert!(
        !out.contains(COMMAND_OUTPUT),
        "the automation account ran a command"
    );
    assert!(prompts.iter().all(|p| !p.contains("Enter code")));

    // Without its key the account has no way in (keyboard-interactive is
    // not among its methods), so no code is ever sent for it either.
    let (ok, _, prompts) = interactive(&s, &sshd, &robot, Code::Right, None);
    assert!(!ok, "the automation account got in without its key");
    assert!(prompts.iter().all(|p| !p.contains("Enter code")));
    assert!(s.sim.received().is_empty());

    // A job run as the person without a terminal answers the password
    // prompt with an empty line: the password stops the stack, no code.
    let mut args = client_options(None);
    args.extend(["-p".to_string(), sshd.port.to_string()]);
    args.extend([format!("{}@127.0.0.1", person.name), "true".to_string()]);
    let (ok, _, err) = unattended("ssh", &args);
    assert!(!ok, "in without a password");
    assert!(err.contains("Permission denied"), "{err}");
    assert!(s.sim.received().is_empty());

    person_still_needs_the_code(&s, &sshd, &person, None);
}

/// Way 2: `exempt_groups`, with `publickey,keyboard-interactive` for all.
/// The module answers PAM_IGNORE for the group; the `pam_permit` line after
/// it decides (alone, PAM_IGNORE is PAM_PERM_DENIED). Only a client that
/// tries keyboard-interactive gets that far: `sftp -b` sets BatchMode, which
/// never does, so it needs `-o BatchMode=no` first.
#[test]
fn exempt_group_lets_sftp_in_after_its_key() {
    let group = TestGroup::new("e");
    let robot = TestUser::new("er");
    let person = TestUser::new("ep");
    group.add(&robot);
    let s = setup_with(
        &[&robot, &person],
        "exempt",
        &format!("exempt_groups = [\"{}\"]\n", group.name),
    );
    let robot_key = give_key(&s, &robot);
    let person_key = give_key(&s, &person);
    let sshd = start_sshd(
        &s,
        "exempt",
        "AuthenticationMethods publickey,keyboard-interactive\n",
        "auth required MODULE\nauth required pam_permit.so",
    );

    let (ok, err, dest) = sftp_put(&s, &sshd, &robot, &robot_key, &["-o", "BatchMode=no"]);
    assert!(ok, "sftp failed: {err}\nsshd log:\n{}", sshd.log());
    assert_arrived_intact(&dest);
    assert!(
        s.sim.received().is_empty(),
        "the simulator was asked: {:?}",
        s.sim.received()
    );
    let skipped = format!("user={} reason=exempt_group:{}", robot.name, group.name);
    assert!(
        s.log()
            .lines()
            .any(|l| l.contains("event=verification_skipped") && l.contains(&skipped)),
        "{}",
        s.log()
    );

    // In its default batch mode sftp never tries keyboard-interactive: it
    // fails at once, before PAM runs.
    std::fs::remove_file(&dest).unwrap();
    let (ok, err, dest) = sftp_put(&s, &sshd, &robot, &robot_key, &[]);
    assert!(!ok, "sftp -b got in without keyboard-interactive");
    assert!(err.contains("Permission denied"), "{err}");
    assert!(!dest.exists());
    assert!(s.sim.received().is_empty());

    person_still_needs_the_code(&s, &sshd, &person, Some(&person_key));

    // Without the pam_permit line the module's PAM_IGNORE is the stack's
    // only answer: libpam refuses the exempt account.
    let bare = start_sshd(
        &s,
        "exempt-bare",
        "AuthenticationMethods publickey,keyboard-interactive\n",
        "auth required MODULE",
    );
    let skips = |s: &Setup| s.log().matches("event=verification_skipped").count();
    let (skipped_before, asked_before) = (skips(&s), s.sim.received().len());
    let (ok, err, dest) = sftp_put(&s, &bare, &robot, &robot_key, &["-o", "BatchMode=no"]);
    assert!(!ok, "an auth stack that only ignored let the account in");
    assert!(err.contains("Permission denied"), "{err}");
    assert!(!dest.exists());
    assert!(skips(&s) > skipped_before, "the module ran and ignored");
    assert_eq!(s.sim.received().len(), asked_before, "nothing was sent");
}

/// What an unattended job sees when it meets the code prompt (an account
/// that is neither matched nor exempt): in batch mode (`sftp -b`, Ansible's
/// key logins) it fails at once and nothing is sent; a client that tries
/// keyboard-interactive with no terminal (scp, rsync, plain ssh from cron)
/// also fails rather than hangs, but the module has sent a code by then.
#[test]
fn unattended_clients_fail_at_the_code_prompt() {
    let person = TestUser::new("u");
    let s = setup_with(&[&person], "unattended", "");
    let key = give_key(&s, &person);
    let sshd = start_sshd(
        &s,
        "unattended",
        "AuthenticationMethods publickey,keyboard-interactive\n",
        "auth required MODULE",
    );

    let (ok, err, dest) = sftp_put(&s, &sshd, &person, &key, &[]);
    assert!(!ok);
    assert!(
        err.contains("Permission denied (keyboard-interactive)"),
        "{err}"
    );
    assert!(!dest.exists());
    assert!(s.sim.received().is_empty(), "batch mode never reached PAM");

    let src = s.lab.dir.join("scp-src");
    std::fs::write(&src, payload()).unwrap();
    let mut args = client_options(Some(&key));
    args.extend(["-P".to_string(), sshd.port.to_string()]);
    args.push(src.display().to_string());
    args.push(format!("{}@127.0.0.1:scp.bin", person.name));
    let (ok, _, err) = unattended("scp", &args);
    assert!(!ok, "scp got in without a code");
    assert!(err.contains("Permission denied"), "{err}");
    assert!(!PathBuf::from(format!("/home/{}/scp.bin", person.name)).exists());
    assert!(
        !s.sends().is_empty(),
        "a client that tries keyboard-interactive reaches the module, which sends a code"
    );
    assert!(s.checks().is_empty(), "no answer was a code");
}
