//! What the root-only admin commands share: the root check, `--config`,
//! switches, and the event each change logs.

use pam_twilio_2fa::config::{Config, DEFAULT_PATH};
use pam_twilio_2fa::events::{EventSink, Record, SystemLog};
use std::ffi::OsString;
use std::path::PathBuf;

pub struct AdminArgs {
    /// Arguments that are not options, in order (user names may be any bytes).
    pub positional: Vec<OsString>,
    pub switches: Vec<String>,
    pub cfg: Config,
}

/// Checks root, then reads `--config PATH`, the allowed `switches` and
/// exactly `positional` other arguments.
pub fn parse(
    usage: &str,
    args: &[OsString],
    switches: &[&str],
    positional: usize,
) -> Result<AdminArgs, String> {
    if unsafe { libc::geteuid() } != 0 {
        return Err(format!(
            "`{usage}` must be run as root (the files it reads and writes are root's)"
        ));
    }
    let mut config = PathBuf::from(DEFAULT_PATH);
    let mut out_switches = Vec::new();
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("--config") => config = PathBuf::from(it.next().ok_or("--config needs a path")?),
            Some(s) if switches.contains(&s) => out_switches.push(s.to_string()),
            Some(s) if s.starts_with("--") => {
                return Err(format!("unknown option {s}\nusage: twilio-2fa {usage}"))
            }
            _ => rest.push(a.clone()),
        }
    }
    if rest.len() != positional || rest.iter().any(|a| a.is_empty()) {
        return Err(format!("usage: twilio-2fa {usage}"));
    }
    let cfg = Config::load(&config).map_err(|e| e.to_string())?;
    Ok(AdminArgs {
        positional: rest,
        switches: out_switches,
        cfg,
    })
}

/// Logs an admin action (syslog and event_log, in the config's
/// event_format), naming who ran it.
pub fn log_event(cfg: &Config, r: Record) {
    let log = SystemLog::from_config(false, cfg);
    let by = std::env::var("SUDO_USER").unwrap_or_else(|_| "root".into());
    log.record(r.with("by", by));
}
