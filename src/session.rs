//! Which terminal session the caller is in, for remembering local logins.
//!
//! A terminal name alone is reused (the next user on /dev/pts/3 gets the
//! same name), so a remembered local login is also bound to the session, the
//! way sudo binds its timestamp: the session id, the start time of the
//! session leader (so a recycled process id is a different session) and the
//! boot id (so a reboot, which restarts the clock, is too).

/// The caller's session as opaque text, or `None` when any part cannot be
/// read: then nothing is remembered and nothing matches (fail closed).
pub fn current() -> Option<String> {
    let sid = unsafe { libc::getsid(0) };
    if sid <= 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{sid}/stat")).ok()?;
    let start = start_time(&stat)?;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let boot = boot.trim();
    let boot_ok = !boot.is_empty()
        && boot.len() <= 64
        && boot.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    boot_ok.then(|| format!("{boot}/{sid}/{start}"))
}

/// Field 22 of /proc/PID/stat: the start time in clock ticks since boot.
/// The second field (the command name, in parentheses) may itself contain
/// spaces and parentheses, so fields are counted after its last ')'.
pub fn start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After the name come fields 3 (state) onwards: field 22 is the 20th.
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_field_22_even_with_an_odd_command_name() {
        let tail = "S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 35100 5124096";
        assert_eq!(start_time(&format!("8844 (bash) {tail}")), Some(35100));
        assert_eq!(
            start_time(&format!("8844 (a) b) c (d) {tail}")),
            Some(35100)
        );
        assert_eq!(start_time("8844 (bash) S 1 2"), None);
        assert_eq!(start_time("garbage"), None);
    }

    #[test]
    fn this_process_has_a_session() {
        // The test runner may sit in a session whose leader has gone, so
        // only the shape is checked when there is one.
        if let Some(s) = current() {
            assert_eq!(s.split('/').count(), 3, "{s}");
        }
    }
}
