//! The `event_log` file: a copy of the module's log lines for tests and SIEM
//! ingestion. Opened once per login, at its first line, through
//! `secure_file::open_append` (no symlink, no FIFO or device, parents safe);
//! a file that cannot be used is reported once and its lines are dropped: a
//! log file must never fail or hang a login.

use std::cell::RefCell;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

pub struct EventLog {
    path: PathBuf,
    /// `None` until the first line; then the open file, or `Err` once
    /// opening it failed (so it is not retried for every line).
    file: RefCell<Option<Result<File, ()>>>,
}

impl EventLog {
    pub fn new(path: PathBuf) -> EventLog {
        EventLog {
            path,
            file: RefCell::new(None),
        }
    }

    /// Appends `line`. Returns what is wrong with the file the first time it
    /// cannot be opened, for the caller to send to syslog.
    pub fn append(&self, line: &str) -> Option<String> {
        let mut slot = self.file.borrow_mut();
        let mut problem = None;
        let file = slot.get_or_insert_with(|| {
            crate::secure_file::open_append(&self.path).map_err(|e| {
                problem = Some(format!(
                    "event_log {}: {e}; its lines are not written",
                    self.path.display()
                ));
            })
        });
        if let Ok(f) = file {
            // One write call per line so concurrent logins do not interleave.
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
        problem
    }
}

/// What is wrong with `path` as an event log, if anything (it may not
/// exist yet): for `twilio-2fa check-config`.
pub fn problem(path: &std::path::Path) -> Option<String> {
    crate::secure_file::check_append(path)
        .err()
        .map(|e| format!("event_log {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unusable_file_is_reported_once_and_never_waited_on() {
        let lab = crate::lab::Lab::new("t2fa-unit-eventlog").unwrap();
        let fifo = lab.dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let log = EventLog::new(fifo);
        let first = log.append("a").unwrap();
        assert!(first.contains("not a regular file"), "{first}");
        assert_eq!(log.append("b"), None);

        let file = lab.dir.join("events.log");
        let log = EventLog::new(file.clone());
        assert_eq!(log.append("a"), None);
        assert_eq!(log.append("b"), None);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "a\nb\n");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
