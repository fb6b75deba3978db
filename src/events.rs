//! Events (the old app's signals) and admin log lines.
//!
//! Each goes out as one line: key=value pairs (`event_format = "text"`), or
//! one JSON object (`"json"`). Values are quoted and escaped so a hostile
//! user name cannot forge extra fields or extra lines, in either format.
//! Callers pass masked numbers only; no code or secret is ever given to this
//! module.

use crate::clock::Clock;
use crate::syslog::{Severity, Syslog};
use serde::Deserialize;
use std::cell::RefCell;
use std::path::PathBuf;

/// How lines are written: `event_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `key=value` pairs; the event log adds `time=` and `level=` in front.
    #[default]
    Text,
    /// One JSON object per line, `time` and `level` first, the same in
    /// syslog and the event log: a collector needs no parser of ours.
    Json,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
        }
    }
}

/// From a string, so a wrong value is refused with the two that work.
impl<'de> Deserialize<'de> for Format {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            other => Err(serde::de::Error::custom(format!(
                "\"{}\" is not an event format; use \"text\" or \"json\"",
                other.escape_debug()
            ))),
        }
    }
}

/// Longest value written, in characters: a hostile name cannot make a
/// line of any length.
const MAX_VALUE_CHARS: usize = 512;

/// Keys every JSON line starts with, written from the record's time and
/// level, never from a field.
const SINK_KEYS: [&str; 2] = ["time", "level"];

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

    /// Sets `key`; setting it again replaces its value where it stands, so
    /// a record never holds a key twice (JSON keys must be unique, and a
    /// collector must not have to guess which of two values counts).
    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Record {
        let value = value.into();
        match self.fields.iter_mut().find(|(k, _)| *k == key) {
            Some(field) => field.1 = value,
            None => self.fields.push((key, value)),
        }
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

    /// One JSON object: `time` (ISO 8601, UTC) and `level` first, then the
    /// fields in order, every value a string. serde_json escapes quotes,
    /// backslashes and control characters, so no value can end the string,
    /// add a key or break the line. A field named like the sink's own keys
    /// is left out: those two are always the sink's.
    pub fn to_json(&self, time: &str) -> String {
        let mut out = String::from("{");
        let own = [("time", time), ("level", self.level.name())];
        let fields = self
            .fields
            .iter()
            .filter(|(k, _)| !SINK_KEYS.contains(k))
            .map(|(k, v)| (*k, v.as_str()));
        for (i, (k, v)) in own.into_iter().chain(fields).enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&json_string(k));
            out.push(':');
            out.push_str(&json_string(v));
        }
        out.push('}');
        out
    }
}

/// `v` (cut to MAX_VALUE_CHARS) as a JSON string. serde_json leaves DEL and
/// the C1 controls as they are (JSON allows them); they are escaped too, as
/// the text format does, so a terminal showing the log obeys none.
fn json_string(v: &str) -> String {
    let cut: String = v.chars().take(MAX_VALUE_CHARS).collect();
    let json = serde_json::Value::String(cut).to_string();
    json.chars()
        .map(|c| match c {
            c if c.is_control() => format!("\\u{:04x}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

fn quote(v: &str) -> String {
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-_.:@/*()".contains(c));
    if plain {
        return v.to_string();
    }
    let mut s = String::from("\"");
    for c in v.chars().take(MAX_VALUE_CHARS) {
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
    format: Format,
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
            format: Format::Text,
            file: file.map(crate::event_log::EventLog::new),
            syslog: RefCell::new(None),
            socket: None,
        }
    }

    /// The log a config asks for: its `event_log` and `event_format`. The
    /// module and `twilio-2fa` both use this, so their lines look alike.
    pub fn from_config(debug: bool, cfg: &crate::config::Config) -> SystemLog {
        SystemLog::new(debug, cfg.event_log.clone()).with_format(cfg.event_format)
    }

    pub fn with_format(mut self, format: Format) -> SystemLog {
        self.format = format;
        self
    }

    /// Sends syslog lines to `socket` instead of the system's.
    pub fn with_syslog_socket(mut self, socket: PathBuf) -> SystemLog {
        self.socket = Some(socket);
        self
    }

    /// syslog only, in the text format: for lines logged before the config
    /// (its event_log and event_format) is known.
    pub fn syslog_only(debug: bool) -> SystemLog {
        SystemLog::new(debug, None)
    }

    /// (syslog message, event_log line) for `r`. Text: the event log adds
    /// time and level in front. JSON: the same object for both (the syslog
    /// header stays; its message is the object).
    fn render(&self, r: &Record) -> (String, String) {
        let time = crate::clock::iso_time(crate::clock::SystemClock.now());
        match self.format {
            Format::Text => {
                let line = r.to_line();
                let file_line = format!("time={time} level={} {line}", r.level.name());
                (line, file_line)
            }
            Format::Json => {
                let line = r.to_json(&time);
                (line.clone(), line)
            }
        }
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
        let (message, file_line) = self.render(&r);
        // Logging must never fail a login: errors here are dropped.
        self.send_to_syslog(r.level, &message);
        if let Some(file) = &self.file {
            // Said once per login, not for every line.
            if let Some(problem) = file.append(&file_line) {
                let said = self.render(&Record::message(Level::Error, problem)).0;
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

    #[test]
    fn json_lines_keep_time_level_and_field_order() {
        let r = Record::event("verification_sent")
            .with("user", "alice")
            .with("to", "+1******2671");
        assert_eq!(
            r.to_json("2026-11-30T12:00:00Z"),
            r#"{"time":"2026-11-30T12:00:00Z","level":"info","event":"verification_sent","user":"alice","to":"+1******2671"}"#
        );
        let m = Record::message(Level::Error, "say \"no\"").to_json("t");
        assert_eq!(m, r#"{"time":"t","level":"error","msg":"say \"no\""}"#);
    }

    #[test]
    fn hostile_values_cannot_forge_json_keys_or_lines() {
        let hostile = "eve\",\"level\":\"debug\"}\n{\"event\":\"x\u{7f}\u{85}\u{1b}[2J\\";
        let line = Record::event("user_unknown")
            .with("user", hostile)
            .at(Level::Warning)
            .to_json("t");
        assert!(!line.contains('\n'), "{line}");
        assert!(!line.chars().any(char::is_control), "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let o = v.as_object().unwrap();
        assert_eq!(o.len(), 4, "{line}");
        assert_eq!(o["level"], "warning");
        assert_eq!(o["event"], "user_unknown");
        assert_eq!(o["user"], hostile);
    }

    #[test]
    fn a_key_set_twice_holds_its_last_value_once() {
        let r = Record::event("e")
            .with("user", "a")
            .with("by", "root")
            .with("user", "b");
        assert_eq!(r.to_line(), "event=e user=b by=root");
        // The sink's own keys cannot be shadowed by a field.
        let j = Record::event("e").with("level", "debug").to_json("t");
        assert_eq!(j, r#"{"time":"t","level":"info","event":"e"}"#);
    }

    #[test]
    fn long_values_are_cut_in_json_too() {
        let j = Record::event("e")
            .with("user", "a".repeat(5000))
            .to_json("t");
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["user"].as_str().unwrap().len(), MAX_VALUE_CHARS);
    }

    #[test]
    fn the_json_format_sends_one_object_to_syslog_and_the_file() {
        use std::os::unix::net::UnixDatagram;
        let lab = crate::lab::Lab::new("t2fa-unit-syslog-json").unwrap();
        let path = lab.dir.join("log");
        let daemon = UnixDatagram::bind(&path).unwrap();
        daemon
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let file = lab.dir.join("events.log");
        let log = SystemLog::new(false, Some(file.clone()))
            .with_format(Format::Json)
            .with_syslog_socket(path);
        log.record(Record::event("verification_sent").with("user", "alice"));
        let mut buf = [0u8; 2048];
        let n = daemon.recv(&mut buf).unwrap();
        let got = String::from_utf8_lossy(&buf[..n]).into_owned();
        let (header, message) = got.split_once("]: ").unwrap();
        assert!(header.starts_with("<86>"), "{got}");
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text, format!("{message}\n"));
        let v: serde_json::Value = serde_json::from_str(message).unwrap();
        assert_eq!(v["event"], "verification_sent");
        assert_eq!(v["user"], "alice");
    }
}
