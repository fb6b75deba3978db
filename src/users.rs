//! Is a user known to the system? (sshd runs the stack for invalid users too.)

pub trait UserDb {
    fn exists(&self, user: &str) -> bool;
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
    }
}
