//! Events (the old app's signals) and admin log lines.
//!
//! Each goes out as one line of key=value pairs. Values are quoted and escaped
//! so a hostile user name cannot forge extra fields or extra lines. Callers pass
//! masked numbers only; no code or secret is ever given to this module.

use crate::clock::Clock;
use std::io::Write;
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
    pub debug: bool,
    pub file: Option<PathBuf>,
}

impl SystemLog {
    /// syslog only: for lines logged before the config (and its event_log) is known.
    pub fn syslog_only(debug: bool) -> SystemLog {
        SystemLog { debug, file: None }
    }
}

impl EventSink for SystemLog {
    fn record(&self, r: Record) {
        if r.level == Level::Debug && !self.debug {
            return;
        }
        let line = r.to_line();
        // Logging must never fail a login: errors here are dropped.
        let formatter = syslog::Formatter3164 {
            facility: syslog::Facility::LOG_AUTHPRIV,
            hostname: None,
            process: "pam_twilio_2fa".into(),
            pid: std::process::id(),
        };
        if let Ok(mut logger) = syslog::unix(formatter) {
            let _ = match r.level {
                Level::Error => logger.err(&line),
                Level::Warning => logger.warning(&line),
                Level::Info => logger.info(&line),
                Level::Debug => logger.debug(&line),
            };
        }
        if let Some(path) = &self.file {
            let time = crate::clock::iso_time(crate::clock::SystemClock.now());
            append_line(
                path,
                &format!("time={time} level={} {line}", r.level.name()),
            );
        }
    }
}

fn append_line(path: &PathBuf, line: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        // One write call per line so concurrent logins do not interleave.
        let _ = f.write_all(format!("{line}\n").as_bytes());
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
