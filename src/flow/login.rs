//! Who is logging in, from where: the login as PAM gave it, and the
//! origin `remember` binds a proven second factor to.

/// Who is logging in, from where, through which PAM service.
#[derive(Debug, Clone)]
pub struct Login<'a> {
    pub user: &'a str,
    pub rhost: Option<&'a str>,
    pub tty: Option<&'a str>,
    pub service: &'a str,
    /// This machine's short host name, for the `{host}` placeholder.
    pub hostname: &'a str,
    /// The real uid of the process (the caller under su, sudo, pkexec).
    pub caller_uid: u32,
    /// The caller's terminal session (`session::current`): opaque, `None`
    /// when it cannot be told.
    pub session: Option<String>,
}

impl Login<'_> {
    /// The caller's uid when it is not root (su, sudo, pkexec's helper run
    /// with the caller's real uid): that user may stop (SIGSTOP) or limit
    /// (rlimits) this process, so a request that times out or fails may be
    /// their doing, never an outage. `None` under sshd, login and the like.
    pub fn interfering_caller(&self) -> Option<u32> {
        (self.caller_uid != 0).then_some(self.caller_uid)
    }

    /// Where and by whom the second factor was proven, for `remember`:
    /// always bound to the PAM service and the caller's real uid (root for
    /// sshd; the user for a local program that sets PAM_RHOST, such as sudo
    /// with pam_rhost); a remote login to the remote host; a local one to
    /// the terminal and its session (a terminal name alone is reused by the
    /// next user). `None` (nothing remembered, nothing matches) when a part
    /// is missing or the origin would be longer than the state file keeps.
    pub fn origin(&self) -> Option<String> {
        let svc = escape(self.service);
        let origin = match (self.rhost, self.tty, &self.session) {
            (Some(h), _, _) if !h.is_empty() => {
                format!("svc={svc} uid={} rhost={}", self.caller_uid, escape(h))
            }
            (_, Some(t), Some(session)) if !t.is_empty() && !session.is_empty() => format!(
                "svc={svc} uid={} tty={} session={}",
                self.caller_uid,
                escape(t),
                escape(session)
            ),
            _ => return None,
        };
        (origin.len() <= crate::state::MAX_ORIGIN_LEN).then_some(origin)
    }
}

/// Every byte outside a small safe set as %XX: the parts of an origin can
/// hold neither its separators nor anything that would drive a terminal
/// when `twilio-2fa status` shows it.
fn escape(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for b in part.bytes() {
        if b.is_ascii_alphanumeric() || b"._:/@+-".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
