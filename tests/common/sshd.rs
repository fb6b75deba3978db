//! A real OpenSSH sshd on loopback whose PAM service uses the module, for
//! tests/sshd.rs and tests/automation.rs. Needs root (a file in /etc/pam.d,
//! removed when the server is dropped) and openssh-server.

use super::{Setup, TempFile};
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
