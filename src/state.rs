//! Per-user state that must outlive one login: wrong-code count, lockout,
//! the last code sent, remembered origins. Kept in a root-owned directory,
//! one file per user, changed only under an exclusive lock and replaced
//! atomically (write a spare file, fsync, swap it in).

use crate::method::Method;
use crate::secure_file::{check_dir, root_or_us};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What is kept for one user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserState {
    /// Wrong codes (and checks under way) since the last success.
    #[serde(default)]
    pub attempts: u32,
    /// Seconds since the epoch until which the user is locked out.
    #[serde(default)]
    pub locked_until: Option<u64>,
    /// The last verification sent, while it may still be used.
    #[serde(default)]
    pub pending: Option<PendingSend>,
    /// When the user's last code was sent, by any login: resends wait
    /// `retry_time` from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sent_at: Option<u64>,
    /// Where the user last passed the second factor from.
    #[serde(default)]
    pub remembered: Vec<Remembered>,
    /// The user's number as last parsed, so logins skip the metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<crate::phone::ParsedNumber>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingSend {
    pub sid: String,
    pub method: Method,
    /// E.164: a code sent to another number is not reused.
    pub to: String,
    pub sent_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Remembered {
    /// Who proved the second factor, where, through which service: built by
    /// `flow::Login::origin` ("svc=... uid=... rhost=..." or "svc=... uid=...
    /// tty=... session=..."). Entries in the older "rhost:X" / "tty:X" form never
    /// match a new origin; they just expire.
    pub origin: String,
    pub verified_at: u64,
}

/// At most this many remembered origins per user; the oldest go first.
pub const MAX_REMEMBERED: usize = 32;
/// Longest origin kept, in bytes; a longer one is never remembered.
pub const MAX_ORIGIN_LEN: usize = 256;

// Both caps are checked when a state file is read, so what the module writes
// always fits what it will read: an entry is at most ~100 bytes of JSON
// around an origin that serialises to at most 2 bytes per byte (control
// characters are refused, only '"' and '\\' are escaped). See the test
// `the_largest_state_fits_the_file_limit`.
const _: () = assert!(MAX_REMEMBERED * (2 * MAX_ORIGIN_LEN + 100) < MAX_STATE_FILE as usize / 2);

impl UserState {
    /// Seconds of lockout left at `now`, if locked.
    pub fn lockout_left(&self, now: u64) -> Option<u64> {
        self.locked_until.filter(|t| *t > now).map(|t| t - now)
    }

    pub fn remember(&mut self, origin: &str, now: u64) {
        if !origin_ok(origin) {
            return;
        }
        self.remembered.retain(|r| r.origin != origin);
        self.remembered.push(Remembered {
            origin: origin.to_string(),
            verified_at: now,
        });
        let excess = self.remembered.len().saturating_sub(MAX_REMEMBERED);
        self.remembered.drain(..excess);
    }

    /// Ends every remembered login (a new number, or one removed, must be
    /// proven again everywhere); returns how many there were.
    pub fn forget_remembered(&mut self) -> usize {
        std::mem::take(&mut self.remembered).len()
    }

    /// Drops remembered origins older than `window` seconds.
    pub fn prune_remembered(&mut self, now: u64, window: u64) {
        self.remembered.retain(|r| r.verified_at + window > now);
    }

    pub fn is_remembered(&self, origin: &str, now: u64, window: u64) -> bool {
        window > 0
            && self
                .remembered
                .iter()
                .any(|r| r.origin == origin && r.verified_at <= now && now < r.verified_at + window)
    }

    fn validate(&self) -> Result<(), String> {
        if let Some(p) = &self.pending {
            let sid_ok = p.sid.len() == 34
                && p.sid.starts_with("VE")
                && p.sid[2..].bytes().all(|b| b.is_ascii_hexdigit());
            if !sid_ok {
                return Err("pending.sid is not a verification SID".into());
            }
        }
        if self.remembered.len() > MAX_REMEMBERED {
            return Err("too many remembered origins".into());
        }
        if !self.remembered.iter().all(|r| origin_ok(&r.origin)) {
            return Err(format!(
                "a remembered origin is empty, longer than {MAX_ORIGIN_LEN} bytes or holds control characters"
            ));
        }
        Ok(())
    }
}

/// An origin the state file may hold: within the length cap, no control
/// characters (which JSON would write as six bytes each).
fn origin_ok(origin: &str) -> bool {
    !origin.is_empty() && origin.len() <= MAX_ORIGIN_LEN && !origin.chars().any(char::is_control)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateError {
    /// The directory is missing and cannot be made, or is not safe to use.
    Unsafe(String),
    /// A state file that cannot be read or parsed: never silently reset.
    Corrupt(String),
    /// Another login for this user holds the lock for too long.
    Busy,
    Io(String),
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::Unsafe(s) => write!(f, "unsafe state directory: {s}"),
            StateError::Corrupt(s) => write!(f, "corrupt state file: {s}"),
            StateError::Busy => f.write_str("state file locked by another login for too long"),
            StateError::Io(s) => write!(f, "state file error: {s}"),
        }
    }
}

/// What the flow needs: run a change on a user's state under their lock.
pub trait StateStore {
    /// Locks the user's state, runs `f` on it and saves it if `f` changed it.
    fn update(&self, user: &str, f: &mut dyn FnMut(&mut UserState)) -> Result<(), StateError>;
}

/// Reads a user's state (under the lock, so never a half-written one).
pub fn read(store: &dyn StateStore, user: &str) -> Result<UserState, StateError> {
    let mut out = UserState::default();
    store.update(user, &mut |s| out = s.clone())?;
    Ok(out)
}

/// Parses a state file's text; anything but a valid state is an error.
pub fn parse_state(text: &str) -> Result<UserState, String> {
    let state: UserState = serde_json::from_str(text).map_err(|e| e.to_string())?;
    state.validate()?;
    Ok(state)
}

/// The state directory on disk.
pub struct StateDir {
    pub path: PathBuf,
    /// How long to wait for another login's lock before giving up.
    pub lock_wait: Duration,
    /// Set once `ensure` has passed. A login reads and writes the state
    /// several times; the directory and its root-owned parents cannot turn
    /// unsafe in between without root, so one check per login is enough.
    checked: AtomicBool,
}

/// Largest state file we read.
const MAX_STATE_FILE: u64 = 64 * 1024;

impl StateDir {
    pub fn new(path: PathBuf, lock_wait: Duration) -> StateDir {
        StateDir {
            path,
            lock_wait,
            checked: AtomicBool::new(false),
        }
    }

    /// Creates the directory (0700) if missing, then checks it and its parents.
    pub fn ensure(&self) -> Result<(), StateError> {
        if self.checked.load(Ordering::Relaxed) {
            return Ok(());
        }
        match std::fs::symlink_metadata(&self.path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                use std::os::unix::fs::DirBuilderExt;
                let made = std::fs::DirBuilder::new().mode(0o700).create(&self.path);
                // Another login may have made it a moment ago: that is fine,
                // the safety check below judges what is there.
                made.or_else(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => Ok(()),
                    _ => Err(e),
                })
                .map_err(|e| {
                    StateError::Unsafe(format!("{}: cannot create: {e}", self.path.display()))
                })?;
            }
            Err(e) => return Err(StateError::Unsafe(format!("{}: {e}", self.path.display()))),
        }
        check_dir(&self.path, 0o077).map_err(StateError::Unsafe)?;
        self.checked.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// The file for `user`: a name that cannot leave the directory or
    /// collide with another user's.
    pub fn file_for(&self, user: &[u8]) -> PathBuf {
        self.path.join(file_name_for(user))
    }

    fn lock(&self, file: &Path) -> Result<File, StateError> {
        let lock_path = with_suffix(file, ".lock");
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&lock_path)
            .map_err(|e| StateError::Io(format!("{}: {e}", lock_path.display())))?;
        let deadline = Instant::now() + self.lock_wait;
        loop {
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(f);
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK)
                && err.raw_os_error() != Some(libc::EINTR)
            {
                return Err(StateError::Io(format!(
                    "{}: flock: {err}",
                    lock_path.display()
                )));
            }
            if Instant::now() >= deadline {
                return Err(StateError::Busy);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn load(&self, file: &Path) -> Result<UserState, StateError> {
        let shown = file.display();
        let mut f = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(file)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(UserState::default()),
            Err(e) => return Err(StateError::Corrupt(format!("{shown}: {e}"))),
        };
        let md = f
            .metadata()
            .map_err(|e| StateError::Corrupt(format!("{shown}: {e}")))?;
        if !md.is_file() || md.len() > MAX_STATE_FILE {
            return Err(StateError::Corrupt(format!(
                "{shown}: not a small regular file"
            )));
        }
        if !root_or_us(md.uid()) || md.mode() & 0o077 != 0 {
            return Err(StateError::Corrupt(format!(
                "{shown}: must be owned by root with mode 0600"
            )));
        }
        let mut text = String::new();
        f.read_to_string(&mut text)
            .map_err(|e| StateError::Corrupt(format!("{shown}: {e}")))?;
        parse_state(&text).map_err(|e| StateError::Corrupt(format!("{shown}: {e}")))
    }

    /// Replaces `file` atomically: a reader sees the old or the new state.
    fn save(&self, file: &Path, state: &UserState) -> Result<(), StateError> {
        let text =
            serde_json::to_string_pretty(state).map_err(|e| StateError::Io(e.to_string()))?;
        // Only the lock holder writes the spare file, so a fixed name is safe.
        let spare = with_suffix(file, ".tmp");
        swap_in_file(&spare, file, format!("{text}\n").as_bytes())
            .map_err(|e| StateError::Io(format!("{}: {e}", spare.display())))
    }

    /// Replaces a user's state with `f`'s result even if the file is corrupt:
    /// the administrator's way out (`twilio-2fa unlock`).
    pub fn reset(
        &self,
        user: &[u8],
        f: &mut dyn FnMut(Option<UserState>) -> UserState,
    ) -> Result<(), StateError> {
        self.ensure()?;
        let file = self.file_for(user);
        let _lock = self.lock(&file)?;
        let old = self.load(&file).ok();
        let new = f(old);
        self.save(&file, &new)
    }
}

impl StateStore for StateDir {
    fn update(&self, user: &str, f: &mut dyn FnMut(&mut UserState)) -> Result<(), StateError> {
        self.update_raw(user.as_bytes(), f)
    }
}

impl StateDir {
    /// `update` for a user name given as bytes (the CLI may be handed any).
    pub fn update_raw(
        &self,
        user: &[u8],
        f: &mut dyn FnMut(&mut UserState),
    ) -> Result<(), StateError> {
        self.ensure()?;
        let file = self.file_for(user);
        let _lock = self.lock(&file)?;
        let before = self.load(&file)?;
        let mut after = before.clone();
        f(&mut after);
        if after != before {
            self.save(&file, &after)?;
        }
        Ok(())
    }
}

/// Replaces `file` with `contents` (mode 0600) so that a reader, or a
/// process killed at any instant, sees the old or the new file, never a
/// torn one, for files rewritten on every login: the old file is
/// swapped into `spare` (renameat2 RENAME_EXCHANGE) rather than deleted, so
/// the next write reuses that inode. Allocating and freeing an inode per
/// write is what the file system pays most for here (on ext4 without a
/// journal each new inode scans every recently deleted one; see
/// BENCHMARKS.md). The spare keeps the previous version until the next
/// write: same owner, same mode, same directory as the live file. Where the
/// exchange is not possible (no `file` yet, or a file system without it)
/// this is a plain rename.
pub(crate) fn swap_in_file(spare: &Path, file: &Path, contents: &[u8]) -> std::io::Result<()> {
    write_durably(spare, contents)?;
    if exchange(spare, file).is_err() {
        std::fs::rename(spare, file)?;
    }
    sync_parent(file);
    Ok(())
}

/// Writes `contents` to `path` (created 0600, or reused) and fsyncs it. A
/// reused file must be a regular file of ours; its mode is reset, since it
/// is about to become the live file. It is overwritten in place and then
/// cut to length, so its data block is reused rather than freed and
/// allocated again as truncating first would.
fn write_durably(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut f = match open_for_writing(path) {
        Ok(f) => f,
        // A symlink (ELOOP) or FIFO (ENXIO) under the name: not followed,
        // not waited on, replaced.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENXIO)) => {
            std::fs::remove_file(path)?;
            open_for_writing(path)?
        }
        Err(e) => return Err(e),
    };
    let md = f.metadata()?;
    if !md.is_file() || md.nlink() != 1 || !root_or_us(md.uid()) {
        // Not ours to reuse (an administrator's leftover, or a second name
        // for some other file, whose contents must not be overwritten).
        drop(f);
        std::fs::remove_file(path)?;
        f = open_for_writing(path)?;
    } else if md.mode() & 0o7777 != 0o600 {
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(contents)?;
    if md.len() > contents.len() as u64 {
        f.set_len(contents.len() as u64)?;
    }
    f.sync_all()
}

/// Opens for writing at the start, creating 0600 if missing. O_NONBLOCK:
/// a FIFO planted under the name must fail, not hang the login.
fn open_for_writing(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
}

/// Atomically swaps two existing names (Linux 3.15+ on ext4, xfs, btrfs,
/// tmpfs; other file systems answer EINVAL).
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let a = std::ffi::CString::new(a.as_os_str().as_bytes())?;
    let b = std::ffi::CString::new(b.as_os_str().as_bytes())?;
    // By system call number: glibc's wrapper would need 2.28.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Makes a rename in `file`'s directory durable.
pub(crate) fn sync_parent(file: &Path) {
    if let Some(dir) = file.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

fn with_suffix(file: &Path, suffix: &str) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// "u-" + the name with every byte outside [A-Za-z0-9_-] as %XX; names whose
/// encoding would be long become "h-" + SHA-256. The two forms cannot meet,
/// and neither contains "/" or starts with ".".
pub fn file_name_for(user: &[u8]) -> String {
    let mut enc = String::with_capacity(user.len() + 2);
    for &b in user {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            enc.push(b as char);
        } else {
            enc.push_str(&format!("%{b:02X}"));
        }
    }
    if enc.len() <= 160 {
        return format!("u-{enc}");
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, user);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("h-{hex}")
}

/// An in-memory store for unit tests.
#[derive(Default)]
pub struct MemoryStore(pub std::cell::RefCell<std::collections::HashMap<String, UserState>>);

impl StateStore for MemoryStore {
    fn update(&self, user: &str, f: &mut dyn FnMut(&mut UserState)) -> Result<(), StateError> {
        let mut map = self.0.borrow_mut();
        f(map.entry(user.to_string()).or_default());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe_and_distinct() {
        let names: Vec<Vec<u8>> = vec![
            b"alice".to_vec(),
            b"../../etc/passwd".to_vec(),
            b"a/b".to_vec(),
            b"a%2Fb".to_vec(),
            b".".to_vec(),
            b"..".to_vec(),
            b"a\nb".to_vec(),
            vec![b'x'; 300],
            vec![b'x'; 301],
            vec![0xff, 0xfe, b'a'],
            b"Alice".to_vec(),
        ];
        let encoded: Vec<String> = names.iter().map(|n| file_name_for(n)).collect();
        for e in &encoded {
            assert!(
                !e.contains('/') && !e.starts_with('.') && e.len() < 200,
                "{e}"
            );
        }
        let unique: std::collections::HashSet<_> = encoded.iter().collect();
        assert_eq!(unique.len(), names.len(), "{encoded:?}");
        assert_eq!(file_name_for(b"alice"), "u-alice");
        assert_eq!(file_name_for(b"a/b"), "u-a%2Fb");
    }

    #[test]
    fn remembered_origins_expire_and_are_capped() {
        let mut s = UserState::default();
        s.remember("rhost:192.0.2.1", 100);
        assert!(s.is_remembered("rhost:192.0.2.1", 150, 60));
        assert!(!s.is_remembered("rhost:192.0.2.1", 160, 60));
        assert!(!s.is_remembered("rhost:192.0.2.2", 150, 60));
        assert!(!s.is_remembered("rhost:192.0.2.1", 150, 0));
        for i in 0..40 {
            s.remember(&format!("rhost:10.0.0.{i}"), 200 + i);
        }
        assert_eq!(s.remembered.len(), MAX_REMEMBERED);
        assert!(
            !s.is_remembered("rhost:192.0.2.1", 201, 1000),
            "oldest dropped"
        );
    }

    #[test]
    fn origins_beyond_the_caps_are_neither_kept_nor_read() {
        let mut s = UserState::default();
        s.remember(&"x".repeat(MAX_ORIGIN_LEN + 1), 1);
        s.remember("a\nb", 1);
        assert!(s.remembered.is_empty());
        s.remember(&"x".repeat(MAX_ORIGIN_LEN), 1);
        assert_eq!(s.remembered.len(), 1);
        let mut bad = s.clone();
        bad.remembered[0].origin.push('x');
        let text = serde_json::to_string(&bad).unwrap();
        assert!(parse_state(&text).unwrap_err().contains("longer than"));
        bad.remembered[0].origin = "tty:\u{1b}[2J".into();
        assert!(parse_state(&serde_json::to_string(&bad).unwrap()).is_err());
        bad.remembered = (0..=MAX_REMEMBERED)
            .map(|i| Remembered {
                origin: format!("o{i}"),
                verified_at: 1,
            })
            .collect();
        assert!(parse_state(&serde_json::to_string(&bad).unwrap()).is_err());
    }

    #[test]
    fn the_largest_state_fits_the_file_limit() {
        // Every cap at its worst: the most entries, the longest origins made
        // of the character JSON escapes, the largest timestamps.
        let s = UserState {
            attempts: u32::MAX,
            locked_until: Some(u64::MAX),
            last_sent_at: Some(u64::MAX),
            pending: Some(PendingSend {
                sid: format!("VE{}", "f".repeat(32)),
                method: Method::Whatsapp,
                to: "+123456789012345".into(),
                sent_at: u64::MAX,
            }),
            remembered: (0..MAX_REMEMBERED)
                .map(|_| Remembered {
                    origin: "\"".repeat(MAX_ORIGIN_LEN),
                    verified_at: u64::MAX,
                })
                .collect(),
            number: None,
        };
        let text = serde_json::to_string_pretty(&s).unwrap();
        assert!(text.len() < MAX_STATE_FILE as usize / 2, "{}", text.len());
        assert_eq!(parse_state(&text).unwrap(), s);
    }

    #[test]
    fn forgetting_counts_what_was_remembered() {
        let mut s = UserState::default();
        s.remember("a", 1);
        s.remember("b", 1);
        assert_eq!(s.forget_remembered(), 2);
        assert_eq!(s.forget_remembered(), 0);
    }

    fn state_with_attempts(n: u32) -> UserState {
        UserState {
            attempts: n,
            ..UserState::default()
        }
    }

    #[test]
    fn saves_swap_the_spare_in_instead_of_making_new_files() {
        use std::os::unix::fs::MetadataExt;
        let lab = crate::lab::Lab::new("t2fa-unit-swap").unwrap();
        let dir = StateDir::new(lab.dir.join("state"), Duration::from_secs(1));
        let inode = |p: &Path| std::fs::metadata(p).unwrap().ino();
        dir.update("alice", &mut |s| s.attempts = 1).unwrap();
        let live = dir.file_for(b"alice");
        let spare = with_suffix(&live, ".tmp");
        dir.update("alice", &mut |s| s.attempts = 2).unwrap();
        let (live_ino, spare_ino) = (inode(&live), inode(&spare));
        dir.update("alice", &mut |s| s.attempts = 3).unwrap();
        // The two inodes trade places; no new one is made.
        assert_eq!((inode(&live), inode(&spare)), (spare_ino, live_ino));
        assert_eq!(read(&dir, "alice").unwrap(), state_with_attempts(3));
        // The spare holds the previous version, whole.
        assert_eq!(
            parse_state(&std::fs::read_to_string(&spare).unwrap()).unwrap(),
            state_with_attempts(2)
        );
        for p in [&live, &spare] {
            assert_eq!(std::fs::metadata(p).unwrap().mode() & 0o7777, 0o600);
        }
    }

    #[test]
    fn a_loose_spare_is_made_private_before_it_goes_live() {
        use std::os::unix::fs::MetadataExt;
        let lab = crate::lab::Lab::new("t2fa-unit-spare").unwrap();
        let dir = StateDir::new(lab.dir.join("state"), Duration::from_secs(1));
        dir.update("bob", &mut |s| s.attempts = 1).unwrap();
        let live = dir.file_for(b"bob");
        let spare = with_suffix(&live, ".tmp");
        // Longer than any state: what is past the new end must go.
        std::fs::write(&spare, "x".repeat(5000)).unwrap();
        std::fs::set_permissions(&spare, std::fs::Permissions::from_mode(0o644)).unwrap();
        dir.update("bob", &mut |s| s.attempts = 2).unwrap();
        assert_eq!(std::fs::metadata(&live).unwrap().mode() & 0o7777, 0o600);
        assert_eq!(read(&dir, "bob").unwrap(), state_with_attempts(2));
    }

    #[test]
    fn a_symlink_or_fifo_as_spare_is_replaced_not_followed() {
        let lab = crate::lab::Lab::new("t2fa-unit-odd-spare").unwrap();
        let dir = StateDir::new(lab.dir.join("state"), Duration::from_secs(1));
        let victim = lab.dir.join("victim");
        std::fs::write(&victim, "keep me").unwrap();
        dir.update("carol", &mut |s| s.attempts = 1).unwrap();
        let spare = with_suffix(&dir.file_for(b"carol"), ".tmp");
        let _ = std::fs::remove_file(&spare);
        std::os::unix::fs::symlink(&victim, &spare).unwrap();
        dir.update("carol", &mut |s| s.attempts = 2).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
        std::fs::remove_file(&spare).unwrap();
        let path = std::ffi::CString::new(spare.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
        dir.update("carol", &mut |s| s.attempts = 3).unwrap();
        assert_eq!(read(&dir, "carol").unwrap(), state_with_attempts(3));
        assert!(std::fs::symlink_metadata(dir.file_for(b"carol"))
            .unwrap()
            .is_file());
    }

    #[test]
    fn a_spare_linked_to_another_file_is_not_written_through() {
        let lab = crate::lab::Lab::new("t2fa-unit-linked-spare").unwrap();
        let dir = StateDir::new(lab.dir.join("state"), Duration::from_secs(1));
        dir.update("dave", &mut |s| s.attempts = 1).unwrap();
        let spare = with_suffix(&dir.file_for(b"dave"), ".tmp");
        let _ = std::fs::remove_file(&spare);
        let other = lab.dir.join("state").join("other");
        std::fs::write(&other, "keep me").unwrap();
        std::fs::hard_link(&other, &spare).unwrap();
        dir.update("dave", &mut |s| s.attempts = 2).unwrap();
        assert_eq!(std::fs::read_to_string(&other).unwrap(), "keep me");
        assert_eq!(read(&dir, "dave").unwrap(), state_with_attempts(2));
    }

    #[test]
    fn logins_creating_the_state_directory_at_once_all_succeed() {
        let lab = crate::lab::Lab::new("t2fa-unit-state").unwrap();
        let path = lab.dir.join("state");
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let p = path.clone();
                std::thread::spawn(move || StateDir::new(p, Duration::from_secs(1)).ensure())
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), Ok(()));
        }
    }
}
