//! What the root-only admin commands share: the root check, the config,
//! and the event each change logs.

use pam_twilio_2fa::config::Config;
use pam_twilio_2fa::events::{EventSink, Record, SystemLog};
use std::path::Path;

/// Checks root, then loads the configuration at `path` (from `--config`).
/// `command` names the command in the refusal, e.g. "user set".
pub fn load(command: &str, path: &Path) -> Result<Config, String> {
    if unsafe { libc::geteuid() } != 0 {
        return Err(format!(
            "`twilio-2fa {command}` must be run as root (the files it reads and writes are root's)"
        ));
    }
    Config::load(path).map_err(|e| e.to_string())
}

/// Logs an admin action (syslog and event_log, in the config's
/// event_format), naming who ran it.
pub fn log_event(cfg: &Config, r: Record) {
    let log = SystemLog::from_config(false, cfg);
    let by = std::env::var("SUDO_USER").unwrap_or_else(|_| "root".into());
    log.record(r.with("by", by));
}
