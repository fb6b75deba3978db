//! A syslog daemon restarted mid-login must not kill the host with SIGPIPE.
//!
//! The module runs inside someone else's process, which may leave SIGPIPE at
//! its default action (death). The login here runs in a child process (this
//! binary, re-executed) with SIGPIPE at its default, in a private mount
//! namespace whose /dev/log is a stream socket this test serves: it reads the
//! module's first line and closes the connection, as a restarting daemon
//! does, so the module's next write meets a closed socket.

mod common;
mod reexec;

use common::*;
use pam_twilio_2fa::pam_client::{code_name, PAM_SUCCESS};
use pam_twilio_2fa::simulator::SimConfig;
use reexec::ChildLogin;
use std::io::Read;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Not a test of its own: the child side of the test below (a no-op unless
/// it re-executed this binary to run it).
#[test]
#[ignore = "the child process of the other test in this file"]
fn child_login_with_test_syslog() {
    let Some(req) = reexec::requested() else {
        return;
    };
    let (socket, scratch) = reexec::test_syslog_paths();
    use_as_dev_log(&socket, &scratch);
    // Rust programs start with SIGPIPE ignored; a C host need not.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    req.run();
}

/// A stand-in syslog daemon on a stream socket: it closes the first
/// connection after the module's first line (a restart), then creates
/// `restarted` and keeps every line it gets.
struct Daemon {
    lines: Arc<Mutex<Vec<(usize, String)>>>,
    stop: Arc<AtomicBool>,
}

impl Daemon {
    fn start(path: &Path, restarted_file: PathBuf) -> Daemon {
        let listener = UnixListener::bind(path).expect("bind syslog socket");
        listener.set_nonblocking(true).unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let restarted = Arc::new(AtomicBool::new(false));
        let (l, s) = (lines.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        n += 1;
                        let (l, r, f) = (l.clone(), restarted.clone(), restarted_file.clone());
                        std::thread::spawn(move || serve(n, conn, &l, &r, &f));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Daemon { lines, stop }
    }

    /// (connection number, line) for every line of the module's.
    fn lines(&self) -> Vec<(usize, String)> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(
    n: usize,
    mut conn: UnixStream,
    lines: &Mutex<Vec<(usize, String)>>,
    restarted: &AtomicBool,
    restarted_file: &Path,
) {
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let Ok(got) = conn.read(&mut buf) else { return };
        if got == 0 {
            return;
        }
        pending.extend_from_slice(&buf[..got]);
        while let Some(end) = pending.iter().position(|b| *b == 0) {
            let line = String::from_utf8_lossy(&pending[..end]).into_owned();
            pending.drain(..=end);
            // libpam's own lines (glibc's syslog(3)) come on their own connections.
            if !line.contains("pam_twilio_2fa[") {
                continue;
            }
            lines.lock().unwrap().push((n, line));
            if !restarted.swap(true, Ordering::SeqCst) {
                // The "restart": this connection closes before the module
                // writes again (the child answers its prompt only then).
                drop(conn);
                std::fs::write(restarted_file, "").unwrap();
                return;
            }
        }
    }
}

#[test]
fn a_syslog_restart_mid_login_does_not_kill_the_host() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "needs root (mount namespace)"
    );
    let (s, _outbox_dir, outbox) =
        Setup::with_outbox(SimConfig::default(), "allowed_methods = [\"sms\"]\n");
    let socket = s.lab.dir.join("log");
    let restarted = s.lab.dir.join("restarted");
    let daemon = Daemon::start(&socket, restarted.clone());
    let login = ChildLogin {
        confdir: &s.lab.confdir,
        service: SERVICE,
        user: USER,
        outbox: &outbox,
        right_code: true,
        ruid: None,
    };
    let end = reexec::spawn(
        &["unshare", "-m", "--propagation", "private"],
        "child_login_with_test_syslog",
        &login,
        &[
            reexec::test_syslog_env(&socket, &s.lab.dir).to_vec(),
            vec![(reexec::WAIT_FOR, restarted.display().to_string())],
        ]
        .concat(),
    )
    .finish(60);
    assert_ne!(
        end.status.signal(),
        Some(libc::SIGPIPE),
        "the host died of SIGPIPE when syslog went away: {end:#?}"
    );
    let rc = end
        .pam_rc()
        .unwrap_or_else(|| panic!("no PAM code: {end:#?}"));
    assert_eq!(code_name(rc), code_name(PAM_SUCCESS), "{end:#?}");
    assert!(end.status.success(), "{end:#?}");
    // The module reconnected after the restart and went on logging (the
    // child has ended: its lines are all in, or being read).
    let deadline = Instant::now() + Duration::from_secs(5);
    let lines = loop {
        let lines = daemon.lines();
        if lines
            .iter()
            .any(|(_, l)| l.contains("event=verification_success"))
            || Instant::now() > deadline
        {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (first_conn, first) = lines.first().cloned().expect("no line from the module");
    assert!(first.starts_with("<86>"), "{first}");
    assert!(
        lines
            .iter()
            .any(|(n, l)| *n > first_conn && l.contains("event=verification_success")),
        "no line after the restart: {lines:#?}"
    );
}
