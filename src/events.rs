//! Events (the old app's signals) and admin log lines.
//!
//! Each goes out as one line of key=value pairs. Values are quoted and escaped
//! so a hostile user name cannot forge extra fields or extra lines. Callers pass
//! masked numbers only; no code or secret is ever given to this module.

use crate::clock::Clock;
use crate::syslog::{Severity, Syslog};
use std::cell::RefCell;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
    Info,
    Debug,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

/// One log line: `event=NAME key=value ...`, or `msg="..."` for admin lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub level: Level,
    pub fields: Vec<(&'static str, String)>,
}

impl Record {
    pub fn event(name: &str) -> Record {
        Record {
            level: Level::Info,
            fields: vec![("event", name.to_string())],
        }
    }

    pub fn message(level: Level, msg: impl Into<String>) -> Record {
        Record {
            level,
            fields: vec![("msg", msg.into())],
        }
    }

    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Record {
        self.fields.push((key, value.into()));
        self
    }

    pub fn at(mut self, level: Level) -> Record {
        self.level = level;
        self
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `key=value` pairs; values with anything but safe characters are quoted.
    pub fn to_line(&self) -> String {
        let mut out = String::new();
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(k);
            out.push('=');
            out.push_str(&quote(v));
        }
        out
    }
}

fn quote(v: &str) -> String {
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-_.:@/*()".contains(c));
    if plain {
        return v.to_string();
    }
    let mut s = String::from("\"");
    for c in v.chars().take(512) {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if c.is_control() => s.push_str(&format!("\\x{:02x}", c as u32)),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

pub trait EventSink {
    fn record(&self, r: Record);
}

/// syslog (facility authpriv, ident `pam_twilio_2fa`) plus, optionally, a file
/// (`event_log`) for tests and SIEM ingestion. Debug lines only with `debug`.
pub struct SystemLog {
    debug: bool,
    file: Option<crate::event_log::EventLog>,
    /// One syslog connection for all of a login's lines, made at the first
    /// line; `Some(None)` once connecting failed, so a host without a
    /// syslog socket is not probed again for every line.
    syslog: RefCell<Option<Option<Syslog>>>,
    /// The syslog socket; `None` is the system's (/dev/log and the like).
    socket: Option<PathBuf>,
}

impl SystemLog {
    pub fn new(debug: bool, file: Option<PathBuf>) -> SystemLog {
        SystemLog {
            debug,
            file: file.map(crate::event_log::EventLog::new),
            syslog: RefCell::new(None),
            socket: None,
        }
    }

    /// Sends syslog lines to `socket` instead of the system's.
    pub fn with_syslog_socket(mut self, socket: PathBuf) -> SystemLog {
        self.socket = Some(socket);
        self
    }

    /// syslog only: for lines logged before the config (and its event_log) is known.
    pub fn syslog_only(debug: bool) -> SystemLog {
        SystemLog::new(debug, None)
    }

    fn send_to_syslog(&self, level: Level, line: &str) {
        let connect = || Syslog::connect(self.socket.as_deref()).ok();
        let severity = match level {
            Level::Error => Severity::Err,
            Level::Warning => Severity::Warning,
            Level::Info => Severity::Info,
            Level::Debug => Severity::Debug,
        };
        let mut slot = self.syslog.borrow_mut();
        let fresh = slot.is_none();
        let Some(logger) = slot.get_or_insert_with(connect) else {
            return;
        };
        // A syslog daemon restarted since the last line: connect once more.
        if logger.send(severity, line).is_err() && !fresh {
            *slot = Some(connect());
            if let Some(Some(logger)) = slot.as_ref() {
                let _ = logger.send(severity, line);
            }
        }
    }
}

impl EventSink for SystemLog {
    fn record(&self, r: Record) {
        if r.level == Level::Debug && !self.debug {
            return;
        }
        let line = r.to_line();
        // Logging must never fail a login: errors here are dropped.
        self.send_to_syslog(r.level, &line);
        if let Some(file) = &self.file {
            let time = crate::clock::iso_time(crate::clock::SystemClock.now());
            let problem = file.append(&format!("time={time} level={} {line}", r.level.name()));
            // Said once per login, not for every line.
            if let Some(problem) = problem {
                let said = Record::message(Level::Error, problem).to_line();
                self.send_to_syslog(Level::Error, &said);
            }
        }
    }
}

/// Keeps records in memory: for tests and for the demo's summary.
#[derive(Default)]
pub struct MemoryLog(pub std::cell::RefCell<Vec<Record>>);

impl EventSink for MemoryLog {
    fn record(&self, r: Record) {
        self.0.borrow_mut().push(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_lines_reach_the_daemon_and_survive_its_restart() {
        use std::os::unix::net::UnixDatagram;
        let lab = crate::lab::Lab::new("t2fa-unit-syslog").unwrap();
        let path = lab.dir.join("log");
        let daemon = UnixDatagram::bind(&path).unwrap();
        daemon
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let received = |d: &UnixDatagram| {
            let mut buf = [0u8; 2048];
            let n = d.recv(&mut buf).unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        };
        let log = SystemLog::new(false, None).with_syslog_socket(path.clone());
        log.record(Record::event("verification_sent"));
        log.record(Record::event("verification_approved").at(Level::Warning));
        log.record(Record::event("hidden").at(Level::Debug));
        let first = received(&daemon);
        // <86>: facility authpriv (10 * 8) + severity info (6).
        assert!(first.starts_with("<86>"), "{first}");
        assert!(first.contains("pam_twilio_2fa["), "{first}");
        assert!(first.ends_with("event=verification_sent"), "{first}");
        assert!(received(&daemon).ends_with("event=verification_approved"));
        // The daemon restarts: a new socket under the same name.
        drop(daemon);
        std::fs::remove_file(&path).unwrap();
        let daemon = UnixDatagram::bind(&path).unwrap();
        daemon
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        log.record(Record::event("login_succeeded"));
        assert!(received(&daemon).ends_with("event=login_succeeded"));
    }

    #[test]
    fn without_a_syslog_socket_lines_are_dropped_quietly() {
        let lab = crate::lab::Lab::new("t2fa-unit-nosyslog").unwrap();
        let file = lab.dir.join("events.log");
        let log =
            SystemLog::new(false, Some(file.clone())).with_syslog_socket(lab.dir.join("none"));
        log.record(Record::event("a"));
        log.record(Record::event("b"));
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.contains("event=a") && text.contains("event=b"),
            "{text}"
        );
    }

    #[test]
    fn hostile_values_cannot_forge_fields_or_lines() {
        let r = Record::event("verification_sent").with("user", "eve user=root\nevent=x");
        let line = r.to_line();
        assert_eq!(
            line,
            "event=verification_sent user=\"eve user=root\\x0aevent=x\""
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn plain_values_stay_unquoted() {
        let r = Record::event("verification_sent")
            .with("to", "+1******2671")
            .with("rhost", "192.0.2.1");
        assert_eq!(
            r.to_line(),
            "event=verification_sent to=+1******2671 rhost=192.0.2.1"
        );
    }
}
