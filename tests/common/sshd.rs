//! A real OpenSSH sshd on loopback whose PAM service uses the module, for
//! tests/sshd.rs and tests/automation.rs. Needs root (a file in /etc/pam.d,
//! removed when the server is dropped) and openssh-server.

use super::{Setup, TempFile};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Sshd {
    child: Child,
    pub port: u16,
    _service: TempFile,
    log: PathBuf,
}

impl Sshd {
    /// What sshd wrote (it runs with `-e`, LogLevel VERBOSE).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An ed25519 key pair without a passphrase at `path` (and `path`.pub).
pub fn keygen(path: &Path) {
    assert!(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .unwrap()
        .success());
}

/// Starts sshd on a free loopback port, keyboard-interactive through PAM and
/// public keys allowed, passwords not. `settings` is appended to its config
/// (`Match` blocks must come last, so put them there); `auth` is the PAM
/// service's auth section, where MODULE stands for the module with its
/// config. Waits until it accepts connections.
pub fn start_sshd(s: &Setup, tag: &str, settings: &str, auth: &str) -> Sshd {
    let dir = s.lab.dir.join(format!("sshd-{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let key = dir.join("host_key");
    keygen(&key);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}/sshd.pid\nUsePAM yes\n\
             KbdInteractiveAuthentication yes\nPasswordAuthentication no\nPubkeyAuthentication yes\n\
             UseDNS no\nLogLevel VERBOSE\nSubsystem sftp internal-sftp\n{settings}",
            key.display(),
            dir.display()
        ),
    )
    .unwrap();
    // OpenSSH 9.2 names its PAM service after argv[0]'s basename.
    let service = format!("t2fa-sshd-{tag}-{}", std::process::id());
    let exe = dir.join(&service);
    std::os::unix::fs::symlink("/usr/sbin/sshd", &exe).unwrap();
    let module = format!("{} config={}", s.module.display(), s.lab.config.display());
    let stack = format!(
        "{}\naccount required pam_unix.so\nsession required pam_permit.so\n",
        auth.replace("MODULE", &module)
    );
    let pam_file = TempFile::write(PathBuf::from("/etc/pam.d").join(&service), &stack);
    let log = dir.join("sshd.log");
    let child = Command::new(&exe)
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("sshd (openssh-server is installed by .ci/setup)");
    let sshd = Sshd {
        child,
        port,
        _service: pam_file,
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "sshd did not start:\n{}",
            sshd.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    sshd
}

/// What the client runs on the server; a login that got in prints it.
pub const COMMAND_OUTPUT: &str = "hello-from-sshd";

/// The `ssh` options of these tests: no config file, no host-key questions
/// or records, a connect timeout, and only `key` (or no key at all).
pub fn client_options(key: Option<&Path>) -> Vec<String> {
    let mut o: Vec<String> = [
        "-F",
        "/dev/null",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "ConnectTimeout=10",
    ]
    .map(String::from)
    .to_vec();
    match key {
        Some(k) => o.extend(["-i".to_string(), k.display().to_string()]),
        None => o.extend(["-o", "PubkeyAuthentication=no"].map(String::from)),
    }
    o
}

/// What a person answers at each prompt.
pub struct Answers<'a> {
    pub password: &'a str,
    /// At the code prompt: None for the latest code the simulator sent,
    /// else this text.
    pub code: Option<&'a str>,
}

/// An interactive `ssh user@127.0.0.1 echo COMMAND_OUTPUT`, every prompt
/// answered through SSH_ASKPASS as a person at a terminal would (the
/// simulator must write an outbox). Gives up after `deadline` seconds.
/// Returns (success, stdout, prompts seen).
pub fn ssh_as_person(
    s: &Setup,
    sshd: &Sshd,
    user: &str,
    answers: Answers,
    key: Option<&Path>,
    deadline: u64,
) -> (bool, String, Vec<String>) {
    let dir = s.lab.dir.join(format!("client-{}-{user}", sshd.port));
    std::fs::create_dir_all(&dir).unwrap();
    let prompts = dir.join("prompts");
    let _ = std::fs::remove_file(&prompts);
    let outbox = s.sim.config().outbox.clone().unwrap();
    let askpass = dir.join("askpass");
    std::fs::write(
        &askpass,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$1\" >> {prompts}\ncase \"$1\" in\n\
             *assword*) echo '{password}' ;;\n\
             *'Enter code'*) if [ '{code}' = latest ]; then sed -n 's/.*\"code\":\"\\([0-9]*\\)\".*/\\1/p' {outbox} | tail -n 1; else echo '{code}'; fi ;;\n\
             *) echo ;;\nesac\n",
            prompts = prompts.display(),
            outbox = outbox.display(),
            password = answers.password,
            code = answers.code.unwrap_or("latest"),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut cmd = Command::new("setsid");
    cmd.arg("-w")
        .arg("ssh")
        .args(["-p", &sshd.port.to_string()])
        .args(client_options(key))
        .args(["-o", "BatchMode=no", "-o", "NumberOfPasswordPrompts=1"])
        .arg(format!("{user}@127.0.0.1"))
        .arg(format!("echo {COMMAND_OUTPUT}"))
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .stdin(Stdio::null());
    let (ok, out, _) = super::run_with_deadline(&mut cmd, deadline);
    let seen = std::fs::read_to_string(&prompts).unwrap_or_default();
    (ok, out, seen.lines().map(String::from).collect())
}
