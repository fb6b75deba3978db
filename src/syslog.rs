//! A small syslog client: one RFC 3164 line per message to the local syslog
//! socket, as the `syslog` crate sent them before (facility authpriv, ident
//! `pam_twilio_2fa[pid]`, a UTC timestamp; a stream socket gets a NUL after
//! each line, as glibc's syslog(3) sends it).
//!
//! Why our own: a PAM module runs inside someone else's process (sshd, su,
//! sudo) that may leave SIGPIPE at its default action. Over a stream socket
//! the crate wrote with write(2), so a syslog daemon restarted mid-login
//! raised SIGPIPE and killed the host. Every write here is send(2) with
//! MSG_NOSIGNAL: a closed socket is an error (EPIPE) we can handle.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;

/// Where a syslog daemon listens, tried in this order (as the crate did).
const SYSTEM_PATHS: [&str; 3] = ["/dev/log", "/var/run/syslog", "/var/run/log"];
const IDENT: &str = "pam_twilio_2fa";
/// LOG_AUTHPRIV: logins are security information.
const FACILITY_AUTHPRIV: u8 = 10 << 3;

/// syslog(3) severities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Err = 3,
    Warning = 4,
    Info = 6,
    Debug = 7,
}

enum Socket {
    Datagram(UnixDatagram),
    Stream(UnixStream),
}

/// One connection to the syslog daemon.
pub struct Syslog {
    socket: Socket,
}

impl Syslog {
    /// Connects to `path`, or to the first system socket that exists.
    pub fn connect(path: Option<&Path>) -> io::Result<Syslog> {
        if let Some(p) = path {
            return Syslog::connect_to(p);
        }
        for p in SYSTEM_PATHS {
            match Syslog::connect_to(Path::new(p)) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                other => return other,
            }
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            "no syslog socket found",
        ))
    }

    /// Datagram first (/dev/log is one on most systems); a stream socket
    /// answers EPROTOTYPE to that, and is then connected as a stream.
    fn connect_to(path: &Path) -> io::Result<Syslog> {
        let dgram = UnixDatagram::unbound()?;
        let socket = match dgram.connect(path) {
            Ok(()) => Socket::Datagram(dgram),
            Err(e) if e.raw_os_error() == Some(libc::EPROTOTYPE) => {
                Socket::Stream(UnixStream::connect(path)?)
            }
            Err(e) => return Err(e),
        };
        Ok(Syslog { socket })
    }

    /// Sends one message; never raises SIGPIPE.
    pub fn send(&self, severity: Severity, msg: &str) -> io::Result<()> {
        let line = format_line(
            severity,
            crate::clock::Clock::now(&crate::clock::SystemClock),
            std::process::id(),
            msg,
        );
        match &self.socket {
            Socket::Datagram(d) => send_once(d.as_raw_fd(), line.as_bytes()).map(|_| ()),
            Socket::Stream(s) => {
                let mut framed = line.into_bytes();
                framed.push(0);
                send_all(s.as_raw_fd(), &framed)
            }
        }
    }
}

/// `<PRI>Mmm DD HH:MM:SS pam_twilio_2fa[PID]: msg`, the time in UTC.
pub fn format_line(severity: Severity, now: u64, pid: u32, msg: &str) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // "YYYY-MM-DDTHH:MM:SSZ"
    let iso = crate::clock::iso_time(now);
    let month = iso[5..7].parse::<usize>().unwrap_or(1).clamp(1, 12);
    format!(
        "<{}>{} {} {} {IDENT}[{pid}]: {msg}",
        FACILITY_AUTHPRIV | severity as u8,
        MONTHS[month - 1],
        &iso[8..10],
        &iso[11..19],
    )
}

fn send_once(fd: i32, buf: &[u8]) -> io::Result<usize> {
    loop {
        let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn send_all(fd: i32, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match send_once(fd, buf)? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => buf = &buf[n..],
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_rfc3164_as_the_syslog_crate_sent_them() {
        assert_eq!(
            format_line(Severity::Info, 1_700_000_000, 42, "event=x"),
            "<86>Nov 14 22:13:20 pam_twilio_2fa[42]: event=x"
        );
        assert_eq!(
            format_line(Severity::Err, 0, 7, "m"),
            "<83>Jan 01 00:00:00 pam_twilio_2fa[7]: m"
        );
    }

    #[test]
    fn a_closed_stream_is_an_error_not_a_signal() {
        use std::io::Read;
        use std::os::unix::net::UnixListener;
        let lab = crate::lab::Lab::new("t2fa-unit-syslog-stream").unwrap();
        let path = lab.dir.join("log");
        let listener = UnixListener::bind(&path).unwrap();
        let log = Syslog::connect(Some(&path)).unwrap();
        let (mut daemon, _) = listener.accept().unwrap();
        log.send(Severity::Info, "first").unwrap();
        let mut buf = [0u8; 256];
        let n = daemon.read(&mut buf).unwrap();
        let got = &buf[..n];
        assert!(got.ends_with(b": first\0"), "{got:?}");
        drop(daemon);
        // Rust test binaries ignore SIGPIPE, so this asserts the error only;
        // tests/syslog_sigpipe.rs runs a host with SIGPIPE at its default.
        let e = log.send(Severity::Info, "second").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPIPE));
    }
}
