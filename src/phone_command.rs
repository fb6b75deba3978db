//! `[phones] command`: a program that prints the user's number, e.g. from
//! LDAP. It runs inside the host (sshd, sudo, su), so it is fenced in:
//!
//! - the program and every directory above it must belong to root and be
//!   writable by no one else, else the source is a setup error;
//! - no shell, no environment but PATH, no stdin, none of the host's open
//!   descriptors: only stdout (a pipe to us) and stderr (/dev/null);
//! - its own process group, killed as a whole when the exchange ends, at
//!   the latest at one deadline that covers starting it, reading its output
//!   and waiting for it;
//! - always reaped, also in a host that ignores SIGCHLD.

use crate::phone_book::SourceError;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// `%u` in an argument is replaced by the user name.
pub struct CommandSource {
    pub argv: Vec<String>,
    /// For the whole exchange: start, output, exit.
    pub timeout: Duration,
}

/// How much of the command's output we read.
const MAX_COMMAND_OUTPUT: usize = 4096;

impl CommandSource {
    pub fn lookup(&self, user: &str) -> Result<Option<String>, SourceError> {
        let deadline = Instant::now() + self.timeout;
        let shown = self.argv.first().map(String::as_str).unwrap_or("");
        let err = |e: String| SourceError(format!("phones.command {shown}: {e}"));
        // The program would take such a name for an option.
        if user.starts_with('-') {
            return Err(err(format!(
                "refusing user name {user:?} that starts with '-'"
            )));
        }
        let program = crate::secure_file::check_program(Path::new(shown))
            .map_err(|e| err(format!("unsafe program: {e}")))?;
        let args: Vec<String> = self.argv[1..]
            .iter()
            .map(|a| a.replace("%u", user))
            .collect();
        let mut cmd = Command::new(&program);
        cmd.arg0(shown)
            .args(&args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0);
        let max_fd = open_files_limit();
        // SAFETY: the closure only makes system calls (async-signal-safe).
        unsafe {
            cmd.pre_exec(move || {
                close_host_descriptors(max_fd);
                Ok(())
            })
        };

        let sigchld = SigchldDefault::set();
        let child = cmd.spawn().map_err(|e| err(e.to_string()))?;
        let (output, end) = run(child, deadline);
        drop(sigchld);

        match end {
            End::TimedOut => Err(err(format!("timed out after {} s", self.timeout.as_secs()))),
            End::Lost => Err(err("its exit status was lost".into())),
            End::Exited(status) if status.success() => {
                let text = String::from_utf8_lossy(&output);
                let first = text.lines().next().unwrap_or("").trim().to_string();
                Ok(Some(first).filter(|l| !l.is_empty()))
            }
            End::Exited(status) => Err(err(format!("failed ({status})"))),
        }
    }
}

enum End {
    Exited(std::process::ExitStatus),
    TimedOut,
    /// Someone else reaped it (another thread of the host).
    Lost,
}

/// Reads the output until the program exits or the deadline passes, then
/// kills what is left of its process group (e.g. a background process
/// still holding stdout) and reaps the program.
fn run(mut child: Child, deadline: Instant) -> (Vec<u8>, End) {
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.take();
    if let Some(s) = &stdout {
        set_nonblocking(s);
    }
    let exit_fd = pidfd(pid);
    let mut output = Vec::new();
    let state = loop {
        let state = child_state(pid);
        if state != ChildState::Running {
            break state;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break state;
        }
        // Without a pidfd (kernel before 5.3) look again every 10 ms.
        let slice = match exit_fd {
            Some(_) => left,
            None => left.min(Duration::from_millis(10)),
        };
        let mut fds: Vec<libc::pollfd> = [stdout.as_ref().map(|s| s.as_raw_fd())]
            .into_iter()
            .chain([exit_fd.as_ref().map(|f| f.as_raw_fd())])
            .flatten()
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let ms = slice.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        read_available(&mut stdout, &mut output);
    };
    // What the program wrote before it exited is in the pipe.
    read_available(&mut stdout, &mut output);
    drop(stdout);
    if state == ChildState::Gone {
        // Its group id may be free again: killing it could hit strangers.
        return (output, End::Lost);
    }
    // The group id stays taken while the program is running or an unreaped
    // zombie, so this cannot hit another process group.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let end = match reap(pid) {
        None => End::Lost,
        Some(_) if state == ChildState::Running => End::TimedOut,
        Some(status) => End::Exited(std::process::ExitStatus::from_raw(status)),
    };
    (output, end)
}

/// Reads what the pipe holds now, up to the limit. At EOF, at the limit or
/// on an error the pipe is closed (a program that writes more gets EPIPE).
fn read_available(stdout: &mut Option<ChildStdout>, output: &mut Vec<u8>) {
    let mut buf = [0u8; 1024];
    while let Some(s) = stdout {
        let room = MAX_COMMAND_OUTPUT - output.len();
        match s.read(&mut buf[..room.min(1024)]) {
            Ok(0) => *stdout = None,
            Ok(n) => {
                output.extend_from_slice(&buf[..n]);
                if output.len() >= MAX_COMMAND_OUTPUT {
                    *stdout = None;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(_) => *stdout = None,
        }
    }
}

fn set_nonblocking(s: &ChildStdout) {
    let fd = s.as_raw_fd();
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

/// A descriptor that becomes readable when `pid` exits (Linux 5.3+).
fn pidfd(pid: libc::pid_t) -> Option<OwnedFd> {
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a new descriptor (close-on-exec) that only we own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChildState {
    Running,
    /// Exited, and left a zombie for us (WNOWAIT): its process group id
    /// cannot be reused before we kill the group and reap it.
    Exited,
    /// Not our child any more: something else in the host reaped it.
    Gone,
}

fn child_state(pid: libc::pid_t) -> ChildState {
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if rc == 0 {
        return match unsafe { info.si_pid() } {
            0 => ChildState::Running,
            _ => ChildState::Exited,
        };
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::ECHILD) => ChildState::Gone,
        // EINTR: look again.
        _ => ChildState::Running,
    }
}

/// Waits for `pid` (killed already, so this is short); its wait status, or
/// `None` if it is not ours to wait for.
fn reap(pid: libc::pid_t) -> Option<libc::c_int> {
    loop {
        let mut status = 0;
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            return Some(status);
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return None;
        }
    }
}

/// SIGCHLD is SIG_DFL while the command runs, so its exit leaves a zombie
/// for us to reap: a host that ignores SIGCHLD (or sets SA_NOCLDWAIT) would
/// have the kernel reap it, and a host's handler could reap it first. The
/// host's own disposition is put back afterwards (pam_unix does the same
/// around its helper). In a threaded host several lookups may overlap: the
/// first saves the host's disposition, the last puts it back.
struct SigchldDefault;

/// Lookups under way, and the host's disposition they saved.
static SIGCHLD_SAVED: std::sync::Mutex<(usize, Option<libc::sigaction>)> =
    std::sync::Mutex::new((0, None));

impl SigchldDefault {
    fn set() -> SigchldDefault {
        let mut saved = SIGCHLD_SAVED.lock().unwrap_or_else(|e| e.into_inner());
        if saved.0 == 0 {
            let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
            new.sa_sigaction = libc::SIG_DFL;
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            let rc = unsafe {
                libc::sigemptyset(&mut new.sa_mask);
                libc::sigaction(libc::SIGCHLD, &new, &mut old)
            };
            saved.1 = (rc == 0).then_some(old);
        }
        saved.0 += 1;
        SigchldDefault
    }
}

impl Drop for SigchldDefault {
    fn drop(&mut self) {
        let mut saved = SIGCHLD_SAVED.lock().unwrap_or_else(|e| e.into_inner());
        saved.0 -= 1;
        if saved.0 == 0 {
            if let Some(old) = saved.1.take() {
                unsafe { libc::sigaction(libc::SIGCHLD, &old, std::ptr::null_mut()) };
            }
        }
    }
}

/// The highest descriptor number a process may have, for the fallback below.
fn open_files_limit() -> libc::c_int {
    let mut rl: libc::rlimit = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0;
    if ok {
        rl.rlim_cur.min(1 << 20) as libc::c_int
    } else {
        1024
    }
}

/// In the child, between fork and exec: every descriptor above 2 (the
/// host's sockets, files, pipes without close-on-exec) is closed at exec.
/// Marked rather than closed, so std still learns of a failed exec through
/// its own close-on-exec pipe. Only system calls: this runs after fork in a
/// possibly multi-threaded host.
fn close_host_descriptors(max_fd: libc::c_int) {
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc != 0 {
        // Kernels before 5.11.
        for fd in 3..max_fd {
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_source_outcomes() {
        let cmd = |script: &str| CommandSource {
            argv: vec![
                "/bin/sh".into(),
                "-c".into(),
                script.into(),
                "sh".into(),
                "%u".into(),
            ],
            timeout: Duration::from_secs(1),
        };
        assert_eq!(
            cmd("echo \"+1201555$1\"").lookup("0100"),
            Ok(Some("+12015550100".into()))
        );
        assert_eq!(cmd("printf ''").lookup("alice"), Ok(None));
        assert!(cmd("exit 3")
            .lookup("alice")
            .unwrap_err()
            .0
            .contains("failed"));
        assert!(cmd("sleep 5")
            .lookup("alice")
            .unwrap_err()
            .0
            .contains("timed out"));
        assert!(
            cmd("echo $HOME").lookup("alice").unwrap().is_none(),
            "clean environment"
        );
        assert!(cmd("echo x").lookup("-rf").is_err());
        // Only the first 4 KiB are read; the program gets EPIPE past them.
        assert!(cmd("yes 1 | head -c 100000")
            .lookup("alice")
            .unwrap_err()
            .0
            .contains("failed"));
        assert_eq!(
            cmd("yes 1 | head -c 4000").lookup("alice"),
            Ok(Some("1".into()))
        );
    }
}
