//! Who the user is, and which groups they are in, from the system's user and
//! group databases (NSS: files, LDAP, sssd...).
//!
//! Every answer is either complete or an error: a lookup that failed is never
//! read as "no such user" or "no such group", because the callers fail closed
//! on errors and would fail open on a wrong "no".

use std::ffi::{c_char, CStr, CString};

/// An account as the user database names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// `pw_name`: the one name every key (numbers, state, logs) uses, whatever
    /// capitalisation the client typed.
    pub name: String,
    pub uid: u32,
    /// The primary group.
    pub gid: u32,
}

pub trait UserDb {
    /// The account `typed` logs in as. `Ok(None)`: no such user. `Err`: the
    /// lookup failed, or the entry it found has a name unusable as a key.
    fn lookup(&self, typed: &str) -> Result<Option<Account>, String>;
    /// The ids of every group of `account`, primary and supplementary.
    fn group_ids(&self, account: &Account) -> Result<Vec<u32>, String>;
    /// The id of the group named `name`. `Ok(None)`: no such group.
    fn group_id(&self, name: &str) -> Result<Option<u32>, String>;
}

/// The system's databases through getpwnam_r, getgrnam_r and getgrouplist.
pub struct SystemUsers;

/// First size of an entry buffer; it grows on ERANGE.
const FIRST_BUFFER: usize = 16 * 1024;
/// An entry larger than this is treated as a failed lookup. A group of many
/// thousand members needs far less (a 9000-member group is about 120 KiB).
const MAX_BUFFER: usize = 16 * 1024 * 1024;
/// Enough groups for anyone; getgrouplist says if there are more.
const MAX_GROUPS: usize = 65536;

/// Calls a `get*_r` function with a buffer that grows on ERANGE.
/// `Ok(false)`: not found. `Err`: the function's error number.
fn with_growing_buffer(mut call: impl FnMut(&mut [c_char]) -> (i32, bool)) -> Result<bool, String> {
    let mut buf = vec![0 as c_char; FIRST_BUFFER];
    loop {
        let (rc, found) = call(&mut buf);
        match rc {
            0 => return Ok(found),
            libc::ERANGE if buf.len() < MAX_BUFFER => buf.resize(buf.len() * 4, 0),
            libc::ERANGE => return Err(format!("entry larger than {MAX_BUFFER} bytes")),
            // Only 0 with no result means "not found": ENOENT here can be an
            // unreachable sssd socket, so it counts as an error.
            e => return Err(std::io::Error::from_raw_os_error(e).to_string()),
        }
    }
}

/// A name from the database, usable as a key and in logs.
fn entry_name(p: *const c_char) -> Result<String, String> {
    if p.is_null() {
        return Err("the entry has no name".into());
    }
    let name = unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| "the entry's name is not valid UTF-8".to_string())?;
    if name.is_empty() {
        return Err("the entry's name is empty".into());
    }
    Ok(name.to_string())
}

impl UserDb for SystemUsers {
    fn lookup(&self, typed: &str) -> Result<Option<Account>, String> {
        let Ok(c_name) = CString::new(typed) else {
            return Ok(None);
        };
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut account = None;
        let found = with_growing_buffer(|buf| {
            let mut result: *mut libc::passwd = std::ptr::null_mut();
            let rc = unsafe {
                libc::getpwnam_r(
                    c_name.as_ptr(),
                    &mut pwd,
                    buf.as_mut_ptr(),
                    buf.len(),
                    &mut result,
                )
            };
            if rc == 0 && !result.is_null() {
                // The strings live in `buf`: copy the name out while it exists.
                account = Some(entry_name(pwd.pw_name).map(|name| Account {
                    name,
                    uid: pwd.pw_uid,
                    gid: pwd.pw_gid,
                }));
            }
            (rc, !result.is_null())
        })
        .map_err(|e| format!("getpwnam_r failed: {e}"))?;
        match (found, account) {
            (true, Some(a)) => a.map(Some).map_err(|e| format!("getpwnam_r: {e}")),
            _ => Ok(None),
        }
    }

    fn group_ids(&self, account: &Account) -> Result<Vec<u32>, String> {
        let name = CString::new(account.name.as_str()).map_err(|e| e.to_string())?;
        let mut n: libc::c_int = 64;
        loop {
            let mut gids = vec![0 as libc::gid_t; n as usize];
            let mut count = n;
            let rc = unsafe {
                libc::getgrouplist(name.as_ptr(), account.gid, gids.as_mut_ptr(), &mut count)
            };
            if rc >= 0 {
                gids.truncate(count.clamp(0, n) as usize);
                return Ok(gids);
            }
            // -1 with a larger count: the list did not fit. Anything else failed.
            if count <= n || count as usize > MAX_GROUPS {
                return Err(format!("getgrouplist failed (it asked for {count} groups)"));
            }
            n = count;
        }
    }

    fn group_id(&self, name: &str) -> Result<Option<u32>, String> {
        let Ok(c_name) = CString::new(name) else {
            return Ok(None);
        };
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let found = with_growing_buffer(|buf| {
            let mut result: *mut libc::group = std::ptr::null_mut();
            let rc = unsafe {
                libc::getgrnam_r(
                    c_name.as_ptr(),
                    &mut grp,
                    buf.as_mut_ptr(),
                    buf.len(),
                    &mut result,
                )
            };
            (rc, !result.is_null())
        })
        .map_err(|e| format!("getgrnam_r failed: {e}"))?;
        Ok(found.then_some(grp.gr_gid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_found_and_nonsense_is_not() {
        let root = SystemUsers.lookup("root").unwrap().unwrap();
        assert_eq!((root.name.as_str(), root.uid, root.gid), ("root", 0, 0));
        assert_eq!(SystemUsers.lookup("no-such-user-t2fa"), Ok(None));
        assert_eq!(SystemUsers.lookup("bad\0name"), Ok(None));
        assert_eq!(SystemUsers.lookup(&"a".repeat(5000)), Ok(None));
        assert!(SystemUsers.group_ids(&root).unwrap().contains(&0));
        assert_eq!(SystemUsers.group_id("root"), Ok(Some(0)));
        assert_eq!(SystemUsers.group_id("no-such-group-t2fa"), Ok(None));
    }

    #[test]
    fn a_buffer_grows_until_the_entry_fits_and_no_further() {
        let mut sizes = vec![];
        let r = with_growing_buffer(|buf| {
            sizes.push(buf.len());
            if buf.len() < 1024 * 1024 {
                (libc::ERANGE, false)
            } else {
                (0, true)
            }
        });
        assert_eq!(r, Ok(true));
        assert_eq!(sizes.last(), Some(&(1024 * 1024)));
        let r = with_growing_buffer(|_| (libc::ERANGE, false));
        assert!(r.unwrap_err().contains("larger than"));
        let r = with_growing_buffer(|_| (libc::EIO, false));
        assert!(r.is_err());
        assert_eq!(with_growing_buffer(|_| (0, false)), Ok(false));
    }
}
