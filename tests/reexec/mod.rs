//! Runs one libpam login in a fresh child process: the test binary
//! re-executes itself with `--exact <child test>` and an environment that
//! tells the child what to do. The parent can then signal the child, give it
//! another uid or another mount namespace, and read its PAM return code.
#![allow(dead_code)]

use pam_twilio_2fa::pam_client::{Style, Transaction};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Set in the child's environment: the PAM service folder to use.
pub const CONFDIR: &str = "T2FA_CHILD_CONFDIR";
const SERVICE: &str = "T2FA_CHILD_SERVICE";
const USER: &str = "T2FA_CHILD_USER";
const OUTBOX: &str = "T2FA_CHILD_OUTBOX";
const ANSWER: &str = "T2FA_CHILD_ANSWER";
const RUID: &str = "T2FA_CHILD_RUID";
/// If set: a file the child waits for (10 s at most) before answering a prompt.
pub const WAIT_FOR: &str = "T2FA_CHILD_WAIT_FOR";
/// Set by `test_syslog_env`: the socket a child puts on /dev/log, and a
/// folder for the mounts that takes.
const SYSLOG_SOCKET: &str = "T2FA_CHILD_SYSLOG_SOCKET";
const SCRATCH: &str = "T2FA_CHILD_SCRATCH";

/// The variables for `spawn` that give a child (under `unshare -m`) the
/// syslog socket `socket`, with `scratch` for its mounts; the child mounts
/// them with `common::use_as_dev_log(test_syslog_paths())`.
pub fn test_syslog_env(socket: &Path, scratch: &Path) -> [(&'static str, String); 2] {
    [
        (SYSLOG_SOCKET, socket.display().to_string()),
        (SCRATCH, scratch.display().to_string()),
    ]
}

/// In the child: the (socket, scratch) of `test_syslog_env`.
pub fn test_syslog_paths() -> (PathBuf, PathBuf) {
    let var = |k| PathBuf::from(std::env::var_os(k).expect(k));
    (var(SYSLOG_SOCKET), var(SCRATCH))
}

/// What the child's login should do.
pub struct ChildLogin<'a> {
    pub confdir: &'a Path,
    pub service: &'a str,
    pub user: &'a str,
    /// The simulator's outbox, where the child finds the code it was sent.
    pub outbox: &'a Path,
    /// Type the right code, or a wrong one.
    pub right_code: bool,
    /// Real uid for the login (effective and saved stay 0), as under su.
    pub ruid: Option<u32>,
}

/// A running child; killed (and continued first, if stopped) when dropped,
/// so a failing test never leaves one behind.
pub struct Kid {
    child: Option<Child>,
    pub pid: i32,
}

/// Starts `exe --exact child_test` as `prefix` would run it (e.g. under
/// `unshare`), with the login described by `login` and `extra` variables.
pub fn spawn(
    prefix: &[&str],
    child_test: &str,
    login: &ChildLogin,
    extra: &[(&str, String)],
) -> Kid {
    let exe = std::env::current_exe().expect("current exe");
    let mut cmd = match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    cmd.args([
        "--exact",
        child_test,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CONFDIR, login.confdir)
    .env(SERVICE, login.service)
    .env(USER, login.user)
    .env(OUTBOX, login.outbox)
    .env(ANSWER, if login.right_code { "right" } else { "wrong" })
    .env(RUID, login.ruid.map(|u| u.to_string()).unwrap_or_default())
    .envs(extra.iter().map(|(k, v)| (k, v)))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let child = cmd.spawn().expect("re-executing the test binary");
    let pid = child.id() as i32;
    Kid {
        child: Some(child),
        pid,
    }
}

/// How the child ended.
#[derive(Debug)]
pub struct Ended {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Ended {
    /// The PAM code the child printed, if it got that far.
    pub fn pam_rc(&self) -> Option<i32> {
        self.stdout
            .lines()
            .find_map(|l| l.split_once("PAM_RC=").map(|(_, v)| v))
            .and_then(|v| v.trim().parse().ok())
    }

    /// The messages the module showed the user, as `STYLE text` lines.
    pub fn shown(&self) -> Vec<String> {
        self.stdout
            .lines()
            // libtest's "test NAME ... " may precede the first line.
            .filter_map(|l| l.split_once("SHOWN ").map(|(_, m)| m))
            .map(str::to_string)
            .collect()
    }
}

impl Kid {
    /// Waits at most `secs` for the child to end; kills it and fails past that.
    pub fn finish(mut self, secs: u64) -> Ended {
        let mut child = self.child.take().expect("child");
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if child.try_wait().expect("try_wait").is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = signal(self.pid, libc::SIGCONT);
                let _ = child.kill();
                let _ = child.wait();
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("the child login did not end within {secs} s; stderr:\n{err}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().expect("child output");
        Ended {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = signal(self.pid, libc::SIGCONT);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn signal(pid: i32, sig: i32) -> std::io::Result<()> {
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// In the child: the login the parent asked for, or `None` in a normal run
/// (the child test is then a no-op).
pub fn requested() -> Option<ChildRequest> {
    let confdir = std::env::var_os(CONFDIR)?;
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    Some(ChildRequest {
        confdir: PathBuf::from(confdir),
        service: var(SERVICE),
        user: var(USER),
        outbox: PathBuf::from(var(OUTBOX)),
        right_code: var(ANSWER) == "right",
        ruid: var(RUID).parse().ok(),
    })
}

pub struct ChildRequest {
    pub confdir: PathBuf,
    pub service: String,
    pub user: String,
    pub outbox: PathBuf,
    pub right_code: bool,
    pub ruid: Option<u32>,
}

impl ChildRequest {
    /// Runs the login and prints `SHOWN ...` lines and `PAM_RC=n`.
    pub fn run(&self) {
        if let Some(ruid) = self.ruid {
            // As su does: the caller's real uid, effective uid root.
            assert_eq!(unsafe { libc::setresuid(ruid, 0, 0) }, 0, "setresuid");
        }
        let outbox = self.outbox.clone();
        let right = self.right_code;
        let wait_for = std::env::var_os(WAIT_FOR).map(PathBuf::from);
        let responder = Box::new(move |style: Style, text: &str| -> Option<String> {
            println!("SHOWN {style:?} {}", text.replace('\n', " "));
            if !matches!(style, Style::EchoOff | Style::EchoOn) {
                return Some(String::new());
            }
            if let Some(path) = &wait_for {
                wait_until(|| path.exists());
            }
            let code = latest_code(&outbox)?;
            Some(if right {
                code
            } else if code == "000000" {
                "111111".into()
            } else {
                "000000".into()
            })
        });
        let mut tx = Transaction::start(&self.service, &self.user, Some(&self.confdir), responder)
            .expect("pam_start_confdir");
        let rc = tx.authenticate(0);
        drop(tx);
        println!("PAM_RC={rc}");
        if let Ok(masked) = std::env::var(SCAN_FOR) {
            println!(
                "SECRET_COPIES={}",
                copies_in_own_memory(&unmask_hex(&masked))
            );
        }
    }
}

/// If set: the child counts, after the login, the copies of a secret left
/// in its writable memory. The value is the secret's bytes XOR `MASK`, in
/// hex, so that the child's own copy of what it looks for never matches.
pub const SCAN_FOR: &str = "T2FA_CHILD_SCAN_FOR";
const MASK: u8 = 0x5a;

/// `secret` in the form `SCAN_FOR` takes.
pub fn masked_hex(secret: &str) -> String {
    secret
        .bytes()
        .map(|b| format!("{:02x}", b ^ MASK))
        .collect()
}

fn unmask_hex(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0))
        .collect()
}

/// Counts where `masked` (unmasked) stands in this process's writable
/// mappings: heap, anonymous memory, the stack, libraries' data.
fn copies_in_own_memory(masked: &[u8]) -> usize {
    use std::os::unix::fs::FileExt;
    let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
    let mem = std::fs::File::open("/proc/self/mem").expect("mem");
    let mut found = 0;
    for line in maps.lines() {
        let mut parts = line.split_whitespace();
        let (Some(range), Some(perms)) = (parts.next(), parts.next()) else {
            continue;
        };
        if !perms.starts_with("rw") || line.ends_with("[vvar]") || line.ends_with("[vsyscall]") {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (a, b) = (
            u64::from_str_radix(a, 16).unwrap(),
            u64::from_str_radix(b, 16).unwrap(),
        );
        let mut buf = vec![0u8; (b - a) as usize];
        if mem.read_exact_at(&mut buf, a).is_err() {
            continue;
        }
        found += buf
            .windows(masked.len())
            .filter(|w| w.iter().zip(masked).all(|(m, s)| m ^ MASK == *s))
            .count();
    }
    found
}

/// Polls `ready` for 10 s at most.
fn wait_until(ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The last code the simulator "delivered", waiting for it a little.
fn latest_code(outbox: &Path) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(outbox).unwrap_or_default();
        let code = text.lines().last().and_then(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()?
                .get("code")?
                .as_str()
                .map(str::to_string)
        });
        if code.is_some() || Instant::now() > deadline {
            return code;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
