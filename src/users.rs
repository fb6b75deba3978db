//! Is a user known to the system? (sshd runs the stack for invalid users too.)

pub trait UserDb {
    fn exists(&self, user: &str) -> bool;
    /// Names of the user's groups, primary and supplementary.
    fn groups(&self, user: &str) -> Vec<String>;
}

/// The system's user database through getpwnam_r (NSS: files, LDAP, sssd...).
pub struct SystemUsers;

impl UserDb for SystemUsers {
    fn exists(&self, user: &str) -> bool {
        let Ok(name) = std::ffi::CString::new(user) else {
            return false;
        };
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        loop {
            let rc = unsafe {
                libc::getpwnam_r(
                    name.as_ptr(),
                    &mut pwd,
                    buf.as_mut_ptr(),
                    buf.len(),
                    &mut result,
                )
            };
            // Entries with huge member lists need a bigger buffer; bound the growth.
            if rc == libc::ERANGE && buf.len() < 1024 * 1024 {
                buf.resize(buf.len() * 4, 0);
                continue;
            }
            return rc == 0 && !result.is_null();
        }
    }

    fn groups(&self, user: &str) -> Vec<String> {
        SystemUsers::group_names(user)
    }
}

impl SystemUsers {
    fn primary_gid(user: &std::ffi::CStr) -> Option<libc::gid_t> {
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let mut buf = vec![0 as libc::c_char; 64 * 1024];
        let rc = unsafe {
            libc::getpwnam_r(
                user.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        (rc == 0 && !result.is_null()).then_some(pwd.pw_gid)
    }

    fn group_name(gid: libc::gid_t) -> Option<String> {
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        let mut buf = vec![0 as libc::c_char; 64 * 1024];
        let rc =
            unsafe { libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr(), buf.len(), &mut result) };
        if rc != 0 || result.is_null() {
            return None;
        }
        Some(
            unsafe { std::ffi::CStr::from_ptr(grp.gr_name) }
                .to_string_lossy()
                .into_owned(),
        )
    }
}

/// Enough groups for anyone; getgrouplist says if there are more.
const MAX_GROUPS: usize = 4096;

impl SystemUsers {
    /// Group names via getgrouplist (the system's group database: files, LDAP, sssd).
    pub fn group_names(user: &str) -> Vec<String> {
        let Ok(name) = std::ffi::CString::new(user) else {
            return vec![];
        };
        let Some(gid) = SystemUsers::primary_gid(&name) else {
            return vec![];
        };
        let mut n: libc::c_int = 64;
        loop {
            let mut gids = vec![0 as libc::gid_t; n as usize];
            let mut count = n;
            let rc =
                unsafe { libc::getgrouplist(name.as_ptr(), gid, gids.as_mut_ptr(), &mut count) };
            if rc >= 0 {
                gids.truncate(count.max(0) as usize);
                return gids
                    .into_iter()
                    .filter_map(SystemUsers::group_name)
                    .collect();
            }
            if count as usize > MAX_GROUPS || count <= n {
                return vec![];
            }
            n = count;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_exists_and_nonsense_does_not() {
        assert!(SystemUsers.exists("root"));
        assert!(!SystemUsers.exists("no-such-user-t2fa"));
        assert!(!SystemUsers.exists("bad\0name"));
        assert!(!SystemUsers.exists(&"a".repeat(5000)));
        assert!(SystemUsers.groups("root").contains(&"root".to_string()));
        assert!(SystemUsers.groups("no-such-user-t2fa").is_empty());
    }
}
