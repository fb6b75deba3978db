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
