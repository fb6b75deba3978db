//! Files and directories the module trusts: the config, secret files, phone
//! numbers, the event log, the `[phones] command` program.
//!
//! A file is opened once (never through a symlink, never blocking on a FIFO),
//! checked as opened (fstat of that descriptor) and read from that same
//! descriptor, so nothing can be swapped in between the check and the read.
//! The directory it is in and every directory above it must belong to root
//! and be writable by no one else (OpenSSH's StrictModes): whoever could
//! write one of them could replace the file, e.g. with a config that sends
//! the codes elsewhere. Paths are resolved once (canonicalize) and then opened
//! by that resolved name, so a symlink in an unchecked directory cannot
//! redirect the open.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What a file may let group and others do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Secrets (the config, token files): neither read nor write.
    Secret,
    /// Policy (phone numbers, the event log): no write.
    Policy,
}

/// Root, or whoever runs us (so tests can run unprivileged).
pub(crate) fn root_or_us(uid: u32) -> bool {
    uid == 0 || uid == unsafe { libc::geteuid() }
}

fn root_only(uid: u32) -> bool {
    uid == 0
}

const NOT_BLOCKING: i32 = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;

/// Opens `path` for reading after checking its directories, then checks the
/// opened file. `Ok(None)` when there is no such file.
pub fn open_if_exists(path: &Path, mode: Mode) -> Result<Option<File>, String> {
    open_checked(&locate(path)?, OpenOptions::new().read(true), mode)
}

/// Opens `real` (its directories already checked) with `options`, never
/// following a symlink or waiting, then checks the opened file.
/// `Ok(None)` when there is no such file.
fn open_checked(
    real: &Path,
    options: &mut OpenOptions,
    mode: Mode,
) -> Result<Option<File>, String> {
    let file = match options.custom_flags(NOT_BLOCKING).open(real) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(open_error(e)),
    };
    let md = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    check_opened(&md, mode)?;
    Ok(Some(file))
}

/// Reads the whole file (at most `limit` bytes) from one checked descriptor.
pub fn read(path: &Path, mode: Mode, limit: u64) -> Result<String, String> {
    let file = open_if_exists(path, mode)?.ok_or("cannot read: no such file")?;
    read_from(file, limit)
}

/// Reads an opened file, refusing anything larger than `limit`.
pub fn read_from(file: File, limit: u64) -> Result<String, String> {
    let len = file
        .metadata()
        .map_err(|e| format!("cannot read: {e}"))?
        .len();
    if len > limit {
        return Err(format!("is larger than {limit} bytes"));
    }
    // Sized up front: a growing buffer would leave copies of secrets behind.
    let mut text = String::with_capacity(len as usize + 1);
    file.take(limit + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read: {e}"))?;
    if text.len() as u64 > limit {
        crate::config::wipe(&mut text);
        return Err(format!("is larger than {limit} bytes"));
    }
    Ok(text)
}

/// Opens (creating it, mode 0600) a log file for appending: the event log.
/// A FIFO, device, symlink or a file others may write is refused, never
/// waited on.
pub fn open_append(path: &Path) -> Result<File, String> {
    let mut options = OpenOptions::new();
    options.append(true).create(true).mode(0o600);
    // Created if missing, so "no such file" means its directory went away.
    open_checked(&locate(path)?, &mut options, Mode::Policy)?
        .ok_or_else(|| open_error(std::io::Error::from_raw_os_error(libc::ENOENT)))
}

/// What `open_append` would say about `path`, without creating it: for
/// `twilio-2fa check-config`.
pub fn check_append(path: &Path) -> Result<(), String> {
    open_checked(
        &locate(path)?,
        OpenOptions::new().append(true),
        Mode::Policy,
    )
    .map(|_| ())
}

/// The `[phones] command` program: it and every directory above it must
/// belong to root and be writable by no one else. Returns the resolved path
/// to run, so a symlink on the way cannot be swapped after the check.
pub fn check_program(path: &Path) -> Result<PathBuf, String> {
    let dir = parent_of(path);
    let name = path
        .file_name()
        .ok_or_else(|| "is not a file name".to_string())?;
    let named = check_dirs(dir, root_only)?.join(name);
    // The program itself may be a symlink (e.g. to /etc/alternatives):
    // what it leads to is judged, and run.
    let real = std::fs::canonicalize(&named).map_err(|e| format!("cannot find: {e}"))?;
    check_dirs(parent_of(&real), root_only)?;
    let md = std::fs::metadata(&real).map_err(|e| format!("cannot read: {e}"))?;
    let shown = real.display();
    if !md.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    if !root_only(md.uid()) {
        return Err(format!(
            "{shown} is owned by uid {}, must be owned by root",
            md.uid()
        ));
    }
    if md.mode() & 0o022 != 0 {
        return Err(format!(
            "{shown} is writable by group or others (mode {:04o}); run chmod 755",
            md.mode() & 0o7777
        ));
    }
    Ok(real)
}

/// The directory `path` and every directory above it must belong to root (or
/// us) and must not be writable by group or others (no exception for sticky
/// directories such as /tmp). `forbidden` are the directory's own mode bits
/// that must be clear (0o077 for the state directory: mode 0700).
pub fn check_dir(path: &Path, forbidden: u32) -> Result<(), String> {
    let md = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !md.is_dir() {
        return Err(format!("{} is not a directory", path.display()));
    }
    if !root_or_us(md.uid()) {
        return Err(format!(
            "{} is owned by uid {}, must be owned by root",
            path.display(),
            md.uid()
        ));
    }
    if md.mode() & forbidden != 0 {
        return Err(format!(
            "{} has mode {:04o}, which lets others in (run chmod 700)",
            path.display(),
            md.mode() & 0o7777
        ));
    }
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => {
            check_dirs(parent, root_or_us).map(|_| ())
        }
        _ => Ok(()),
    }
}

/// Checks the directories above `path` and returns the name to open: the
/// resolved directory + the last component (opened with O_NOFOLLOW).
fn locate(path: &Path) -> Result<PathBuf, String> {
    let name = path
        .file_name()
        .ok_or_else(|| "is not a file name".to_string())?;
    Ok(check_dirs(parent_of(path), root_or_us)?.join(name))
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// `dir` and every directory above it, both as named (a symlink on the way
/// lives in a directory that must be safe too) and as resolved. Returns the
/// resolved directory: opening through it, no symlink is followed again.
fn check_dirs(dir: &Path, owner_ok: fn(u32) -> bool) -> Result<PathBuf, String> {
    let named = std::path::absolute(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let real = std::fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for d in named.ancestors() {
        check_one_dir(d, std::fs::metadata(d), owner_ok)?;
    }
    for d in real.ancestors() {
        check_one_dir(d, std::fs::symlink_metadata(d), owner_ok)?;
    }
    Ok(real)
}

fn check_one_dir(
    d: &Path,
    md: std::io::Result<Metadata>,
    owner_ok: fn(u32) -> bool,
) -> Result<(), String> {
    let md = md.map_err(|e| format!("{}: {e}", d.display()))?;
    if !md.is_dir() {
        return Err(format!("{} is not a directory", d.display()));
    }
    if !owner_ok(md.uid()) || md.mode() & 0o022 != 0 {
        return Err(format!(
            "parent {} is writable by a user other than root (owner uid {}, mode {:04o})",
            d.display(),
            md.uid(),
            md.mode() & 0o7777
        ));
    }
    Ok(())
}

/// A file that holds secrets or policy must be a regular file that belongs
/// to root (or whoever runs us) and that no one else may write (or, for
/// secrets, read).
fn check_opened(md: &Metadata, mode: Mode) -> Result<(), String> {
    if !md.is_file() {
        return Err("is not a regular file".into());
    }
    if !root_or_us(md.uid()) {
        return Err(format!(
            "is owned by uid {}, must be owned by root",
            md.uid()
        ));
    }
    let bits = md.mode() & 0o7777;
    if bits & 0o022 != 0 {
        return Err(format!(
            "is writable by group or others (mode {bits:04o}); run chmod 600"
        ));
    }
    if mode == Mode::Secret && bits & 0o077 != 0 {
        return Err(format!(
            "is readable by group or others (mode {bits:04o}); it holds secrets: run chmod 600"
        ));
    }
    Ok(())
}

fn open_error(e: std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ELOOP) => "is a symbolic link: name the file itself".into(),
        // O_NONBLOCK write-open of a FIFO nobody reads.
        Some(libc::ENXIO) => "is not a regular file".into(),
        _ => format!("cannot open: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn files_are_checked_as_opened() {
        let lab = crate::lab::Lab::new("t2fa-unit-secure").unwrap();
        let f = lab.dir.join("f");
        std::fs::write(&f, "x\n").unwrap();
        chmod(&f, 0o600);
        assert_eq!(read(&f, Mode::Secret, 10).unwrap(), "x\n");
        assert!(read(&f, Mode::Secret, 1).unwrap_err().contains("larger"));
        chmod(&f, 0o644);
        assert!(read(&f, Mode::Policy, 10).is_ok());
        assert!(read(&f, Mode::Secret, 10)
            .unwrap_err()
            .contains("readable by group or others"));
        chmod(&f, 0o664);
        assert!(read(&f, Mode::Policy, 10)
            .unwrap_err()
            .contains("writable by group or others"));
        chmod(&f, 0o600);
        let link = lab.dir.join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert!(read(&link, Mode::Policy, 10)
            .unwrap_err()
            .contains("symbolic link"));
        assert_eq!(
            open_if_exists(&lab.dir.join("none"), Mode::Policy)
                .unwrap()
                .map(|_| ()),
            None
        );
        // A directory others may write, anywhere above the file.
        let sub = lab.dir.join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("f"), "x").unwrap();
        chmod(&sub.join("f"), 0o600);
        chmod(&sub, 0o1777);
        let e = read(&sub.join("f"), Mode::Policy, 10).unwrap_err();
        assert!(e.contains("parent") && e.contains("1777"), "{e}");
    }

    #[test]
    fn a_fifo_is_refused_without_waiting() {
        let lab = crate::lab::Lab::new("t2fa-unit-fifo").unwrap();
        let fifo = lab.dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(open_append(&fifo)
            .unwrap_err()
            .contains("not a regular file"));
        assert!(read(&fifo, Mode::Policy, 10)
            .unwrap_err()
            .contains("not a regular file"));
    }
}
