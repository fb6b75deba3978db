//! Runs the distribution's `ldapsearch` with one deadline: libldap's own
//! timeouts do not cover everything (a server that accepts the connection
//! and never answers the TLS handshake keeps `ldapsearch -H ldaps://`
//! waiting forever), so the process is killed at the deadline.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// More than this on stdout is an error (one entry's few values are far
/// less); stderr is cut there.
pub const MAX_STDOUT: usize = 64 * 1024;
const MAX_STDERR: usize = 4096;

pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// A pipe holding `secret`, whose read end the child reads as a file
/// (`/dev/fd/N`): the password never appears in an argument list (which
/// `ps` shows) or in a file of ours.
pub struct SecretPipe {
    read: OwnedFd,
}

impl SecretPipe {
    pub fn new(secret: &[u8]) -> Result<SecretPipe, String> {
        let mut fds = [0 as libc::c_int; 2];
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(format!("pipe: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: two new descriptors that only we own.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // A pipe holds 64 KiB; the secret is at most 4 KiB, so this never blocks.
        std::fs::File::from(write)
            .write_all(secret)
            .map_err(|e| format!("pipe: {e}"))?;
        Ok(SecretPipe { read })
    }

    /// The name the child opens.
    pub fn path(&self) -> String {
        format!("/dev/fd/{}", self.read.as_raw_fd())
    }
}

/// Runs `program args` with only `env`, in `/`, stdin on /dev/null, and
/// `secret`'s read end open in the child; kills it at `deadline`.
pub fn run(
    program: &Path,
    args: &[OsString],
    env: &[(&str, String)],
    secret: Option<&SecretPipe>,
    deadline: Instant,
) -> Result<Finished, String> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        // libldap reads ./ldaprc: not from the caller's working directory.
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(s) = secret {
        let fd = s.read.as_raw_fd();
        // SAFETY: only a system call, between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // Open across exec, in the child only.
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        };
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let out = drain(child.stdout.take(), MAX_STDOUT);
    let err = drain(child.stderr.take(), MAX_STDERR);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let (stdout, too_much) = out.join().unwrap_or_default();
    let (stderr, _) = err.join().unwrap_or_default();
    let status = status.ok_or("timed out")?;
    if too_much {
        return Err(format!("ldapsearch printed more than {MAX_STDOUT} bytes"));
    }
    Ok(Finished {
        status,
        stdout,
        stderr,
    })
}

/// Reads a pipe to its end on a thread, keeping the first `limit` bytes and
/// whether there was more (read on, so the child never blocks on a full pipe).
fn drain<R: Read + Send + 'static>(
    pipe: Option<R>,
    limit: usize,
) -> std::thread::JoinHandle<(Vec<u8>, bool)> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut more = false;
        let Some(mut pipe) = pipe else {
            return (kept, more);
        };
        let mut buf = [0u8; 4096];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let room = limit.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                    more |= n > room;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        (kept, more)
    })
}
