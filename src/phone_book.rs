//! Where users' numbers come from, and where registered numbers go.
//!
//! Sources are asked in order, the first number found wins: `[phones] file`
//! (read-only TOML), `directory` (one file per user; the only place numbers
//! are written), `command` (a program, e.g. an LDAP or SSSD query).

use crate::config::Config;
use crate::secure_file::{self, Mode};
use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::phone_command::CommandSource;

/// A source that exists but cannot be used: our setup is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError(pub String);

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A number on file, and whether the user may change it at login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub number: String,
    /// Only numbers in the directory can be replaced at login.
    pub changeable: bool,
    /// "file", "directory" or "command", for logs and `twilio-2fa user show`.
    pub source: &'static str,
}

/// What the flow needs: find a user's number, store a verified one.
pub trait PhoneBook {
    fn find(&self, user: &str) -> Result<Option<Found>, SourceError>;
    /// True when a `[phones] directory` is configured to store numbers in.
    fn can_store(&self) -> bool;
    /// Stores an E.164 number for `user`, atomically.
    fn store(&self, user: &str, e164: &str) -> Result<(), SourceError>;
    /// What the `[phones] directory` holds for `user` now (the other sources
    /// are never written): the flow compares it, under the user's lock, with
    /// what the login found before it stores a new number.
    fn stored(&self, user: &str) -> Result<Option<String>, SourceError>;
}

/// Largest phone file we read; anything bigger is not a phone number.
const MAX_PHONE_FILE: u64 = 1024;
/// Largest users.toml we read.
const MAX_USERS_FILE: u64 = 4 * 1024 * 1024;

/// `[phones] file`: a read-only TOML table `[users]` of user name → number.
pub struct UsersFile {
    pub path: PathBuf,
}

impl UsersFile {
    pub fn all(&self) -> Result<BTreeMap<String, String>, SourceError> {
        let shown = self.path.display();
        let err = |e: String| SourceError(format!("phones.file {shown}: {e}"));
        // Whoever could write it (or a directory above it) could give
        // anyone's account their own phone.
        let text = secure_file::read(&self.path, Mode::Policy, MAX_USERS_FILE).map_err(err)?;
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct UsersToml {
            #[serde(default)]
            users: BTreeMap<String, String>,
        }
        let parsed: UsersToml =
            toml::from_str(&text).map_err(|e| err(e.message().trim().to_string()))?;
        Ok(parsed.users)
    }

    pub fn lookup(&self, user: &str) -> Result<Option<String>, SourceError> {
        Ok(self.all()?.remove(user))
    }
}

/// `[phones] directory`: one file per user, named after the user.
pub struct PhoneDirectory {
    pub path: PathBuf,
}

impl PhoneDirectory {
    fn file(&self, user: &str) -> Option<PathBuf> {
        // A name that could leave the directory has no file in it.
        is_safe_file_name(user).then(|| self.path.join(user))
    }

    pub fn lookup(&self, user: &str) -> Result<Option<String>, SourceError> {
        let Some(file) = self.file(user) else {
            return Ok(None);
        };
        let err = |e: String| SourceError(format!("phones.directory {}: {e}", file.display()));
        // No directory yet: no one has registered (`store` creates it).
        if let Err(e) = std::fs::symlink_metadata(&self.path) {
            return match e.kind() {
                std::io::ErrorKind::NotFound => Ok(None),
                _ => Err(err(e.to_string())),
            };
        }
        // Whoever can write the directory, or one above it, can swap a
        // user's number file.
        secure_file::check_dir(&self.path, 0o022).map_err(err)?;
        // A number the user could rewrite would let them move their own
        // second factor. Checked as opened, read from the same descriptor.
        let Some(f) = secure_file::open_if_exists(&file, Mode::Policy).map_err(err)? else {
            return Ok(None);
        };
        let text = secure_file::read_from(f, MAX_PHONE_FILE).map_err(err)?;
        // An empty file is damage (a full disk, a truncation), never "no
        // number": that would let whoever can empty it register a phone.
        let number = text.trim();
        if number.is_empty() {
            return Err(err(
                "is empty; restore the number (twilio-2fa user set) or remove the file".into(),
            ));
        }
        Ok(Some(number.to_string()))
    }

    /// Writes `e164` for `user`: a temporary file of this writer's own,
    /// fsync, rename, so a reader sees the old or the new number and two
    /// writers never share a file. Creates the directory (0700) if it is
    /// missing. Callers hold the user's state lock, so that a login cannot
    /// overwrite a number an administrator set meanwhile (see the flow).
    pub fn store(&self, user: &str, e164: &str) -> Result<(), SourceError> {
        let file = self
            .file(user)
            .ok_or_else(|| SourceError(format!("cannot store a number for user name {user:?}")))?;
        let err = |e: String| SourceError(format!("phones.directory {}: {e}", self.path.display()));
        if !self.path.exists() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.path)
                .map_err(|e| err(e.to_string()))?;
        }
        secure_file::check_dir(&self.path, 0o022).map_err(err)?;
        write_new_file(&self.path, &file, format!("{e164}\n").as_bytes())
            .map_err(|e| err(e.to_string()))
    }

    /// Removes a user's number; `Ok(false)` if there was none.
    pub fn remove(&self, user: &str) -> Result<bool, SourceError> {
        let Some(file) = self.file(user) else {
            return Ok(false);
        };
        match std::fs::remove_file(&file) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(SourceError(format!("{}: {e}", file.display()))),
        }
    }

    /// Every user with a number in the directory.
    pub fn users(&self) -> Result<Vec<String>, SourceError> {
        let rd = match std::fs::read_dir(&self.path) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(SourceError(format!("{}: {e}", self.path.display()))),
        };
        let mut out: Vec<String> = rd
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| is_safe_file_name(n))
            .collect();
        out.sort();
        Ok(out)
    }
}

/// The configured sources.
#[derive(Default)]
pub struct Sources {
    pub file: Option<UsersFile>,
    pub directory: Option<PhoneDirectory>,
    pub command: Option<CommandSource>,
}

impl Sources {
    pub fn from_config(c: &Config) -> Sources {
        Sources {
            file: c.phones_file.clone().map(|path| UsersFile { path }),
            directory: c
                .phones_directory
                .clone()
                .map(|path| PhoneDirectory { path }),
            command: c.phones_command.clone().map(|argv| CommandSource {
                argv,
                timeout: Duration::from_secs(c.phones_command_timeout),
            }),
        }
    }
}

impl Sources {
    /// What would make a source fail at login, found without asking for a
    /// user: for `twilio-2fa check-config`.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(f) = &self.file {
            out.extend(f.all().err().map(|e| e.0));
        }
        if let Some(d) = &self.directory {
            if std::fs::symlink_metadata(&d.path).is_ok() {
                if let Err(e) = secure_file::check_dir(&d.path, 0o022) {
                    out.push(format!("phones.directory {}: {e}", d.path.display()));
                }
            }
        }
        if let Some(c) = &self.command {
            let program = c.argv.first().map(String::as_str).unwrap_or("");
            if let Err(e) = secure_file::check_program(std::path::Path::new(program)) {
                out.push(format!("phones.command {program}: unsafe program: {e}"));
            }
        }
        out
    }
}

impl PhoneBook for Sources {
    fn find(&self, user: &str) -> Result<Option<Found>, SourceError> {
        let found = |number: String, changeable, source| Found {
            number,
            changeable,
            source,
        };
        if let Some(f) = &self.file {
            if let Some(n) = f.lookup(user)? {
                return Ok(Some(found(n, false, "file")));
            }
        }
        if let Some(d) = &self.directory {
            if let Some(n) = d.lookup(user)? {
                return Ok(Some(found(n, true, "directory")));
            }
        }
        if let Some(c) = &self.command {
            if let Some(n) = c.lookup(user)? {
                return Ok(Some(found(n, false, "command")));
            }
        }
        Ok(None)
    }

    fn can_store(&self) -> bool {
        self.directory.is_some()
    }

    fn store(&self, user: &str, e164: &str) -> Result<(), SourceError> {
        match &self.directory {
            Some(d) => d.store(user, e164),
            None => Err(SourceError(
                "no [phones] directory to store numbers in".into(),
            )),
        }
    }

    fn stored(&self, user: &str) -> Result<Option<String>, SourceError> {
        match &self.directory {
            Some(d) => d.lookup(user),
            None => Ok(None),
        }
    }
}

/// Replaces `file` (in `dir`) with `contents`, mode 0600, through a
/// temporary file only this call uses: a dot-name (never a user's, see
/// `is_safe_file_name`) made of the process id, a per-process counter and
/// the time, created with O_EXCL. It is removed if anything fails.
fn write_new_file(dir: &Path, file: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".new-{}-{n}-{nanos}.tmp", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)?;
    let written = f
        .write_all(contents)
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, file));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    crate::state::sync_parent(file);
    Ok(())
}

/// True for names that are a single plain path component.
pub fn is_safe_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && !name.starts_with('.')
        && !name.contains('/')
        && !name.chars().any(|c| c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A private folder where the lab puts it (under /run as root): the
    /// directory check refuses world-writable parents such as /tmp, and the
    /// checkout itself may lie below one.
    fn tempdir(tag: &str) -> crate::lab::Lab {
        crate::lab::Lab::new(&format!("t2fa-unit-{tag}")).unwrap()
    }

    fn private(path: &std::path::Path, text: &str) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    #[test]
    fn directory_source_never_leaves_its_directory() {
        let lab = tempdir("phones");
        let dir = lab.dir.clone();
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        private(&dir.join("alice"), "+12015552671\n");
        let src = PhoneDirectory {
            path: dir.join("sub"),
        };
        for name in ["../alice", "..", ".", "", "a/b", "a\nb"] {
            assert_eq!(src.lookup(name), Ok(None), "{name:?}");
        }
        let src = PhoneDirectory { path: dir.clone() };
        assert_eq!(src.lookup("alice"), Ok(Some("+12015552671".into())));
        assert_eq!(src.lookup("bob"), Ok(None));
    }

    #[test]
    fn a_number_file_others_can_write_is_refused() {
        let lab = tempdir("phones-unsafe");
        let dir = lab.dir.clone();
        private(&dir.join("alice"), "+12015552671\n");
        std::fs::set_permissions(dir.join("alice"), std::fs::Permissions::from_mode(0o666))
            .unwrap();
        let src = PhoneDirectory { path: dir.clone() };
        assert!(src.lookup("alice").is_err());
    }

    #[test]
    fn a_failed_store_leaves_no_temporary_file() {
        let lab = tempdir("phones-store");
        let src = PhoneDirectory {
            path: lab.phones.clone(),
        };
        src.store("alice", "+12015550001").unwrap();
        src.store("alice", "+12015550002").unwrap();
        assert_eq!(src.lookup("alice"), Ok(Some("+12015550002".into())));
        // The rename cannot replace a non-empty directory.
        std::fs::create_dir_all(lab.phones.join("bob").join("x")).unwrap();
        assert!(src.store("bob", "+12015550003").is_err());
        let mut names: Vec<String> = std::fs::read_dir(&lab.phones)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, vec!["alice", "bob"]);
    }

    #[test]
    fn an_empty_number_file_is_damage_not_no_number() {
        let lab = tempdir("phones-empty");
        let src = PhoneDirectory {
            path: lab.dir.clone(),
        };
        for text in ["", "\n", "  \t\n"] {
            private(&lab.dir.join("alice"), text);
            assert!(
                src.lookup("alice").unwrap_err().0.contains("is empty"),
                "{text:?}"
            );
        }
    }

    #[test]
    fn first_source_wins_and_only_the_directory_is_changeable() {
        let lab = tempdir("src");
        let dir = lab.dir.clone();
        let file = dir.join("users.toml");
        private(&file, "[users]\nalice = \"+12015550001\"\n");
        private(&dir.join("alice"), "+12015550002");
        private(&dir.join("bob"), "+12015550003");
        let s = Sources {
            file: Some(UsersFile { path: file.clone() }),
            directory: Some(PhoneDirectory { path: dir.clone() }),
            command: None,
        };
        let a = s.find("alice").unwrap().unwrap();
        assert_eq!(
            (a.number.as_str(), a.changeable, a.source),
            ("+12015550001", false, "file")
        );
        let b = s.find("bob").unwrap().unwrap();
        assert_eq!(
            (b.number.as_str(), b.changeable, b.source),
            ("+12015550003", true, "directory")
        );
        private(&file, "[users\n");
        assert!(s.find("alice").is_err());
    }
}
