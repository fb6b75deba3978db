//! `twilio-2fa ldap-phone USER`: a helper for `[phones] command` that finds
//! the user's number in LDAP or Active Directory (`mobile`,
//! `telephoneNumber`). It runs the distribution's OpenLDAP client
//! (`/usr/bin/ldapsearch`, package ldap-utils or openldap-clients) rather
//! than linking an LDAP library into the PAM module: the module stays as it
//! is, and the helper inherits the command source's fences (own process
//! group, one deadline, killed with everything it started).
//!
//! - The user name goes into the filter escaped per RFC 4515 (filter.rs).
//! - TLS always: `ldaps://`, or `ldap://` with StartTLS required (`-ZZ`);
//!   certificates verified (`LDAPTLS_REQCERT=demand`, whatever ldap.conf
//!   says) against the system store that /etc/ldap/ldap.conf names, or
//!   `tls_ca_file`.
//! - The bind password comes from a root-only file and reaches ldapsearch
//!   through a pipe, never an argument.
//! - A clean environment and working directory: nothing of the caller's
//!   (LDAPCONF, LDAPRC, LDAPTLS_*, ./ldaprc) changes where it connects or
//!   what it trusts.
//! - Exactly one entry may match: none is "no number" (empty output, exit
//!   0), more than one is an error.

pub mod config;
pub mod filter;
pub mod ldif;
mod search;

pub use config::LdapConfig;

use std::ffi::OsString;
use std::path::Path;
use std::time::Instant;

/// The OpenLDAP client, where Debian, Ubuntu, Fedora and RHEL put it.
pub const LDAPSEARCH: &str = "/usr/bin/ldapsearch";

/// Longest bind password file.
const MAX_PASSWORD: u64 = 4096;

/// The number for `user` (printed as the directory holds it; the module
/// parses it), `None` if no entry matches or the entry has none of the
/// attributes.
pub fn lookup(cfg: &LdapConfig, user: &[u8]) -> Result<Option<String>, String> {
    let deadline = Instant::now() + cfg.timeout;
    if user.is_empty() {
        return Err("empty user name".into());
    }
    let program = crate::secure_file::check_program(Path::new(LDAPSEARCH))
        .map_err(|e| format!("{LDAPSEARCH}: {e} (install ldap-utils or openldap-clients)"))?;
    let secret = match &cfg.bind_password_file {
        Some(path) => Some(password_pipe(path)?),
        None => None,
    };
    let mut env = vec![
        ("PATH", "/usr/sbin:/usr/bin:/sbin:/bin".to_string()),
        // Overrides any TLS_REQCERT in ldap.conf: never an unverified server.
        ("LDAPTLS_REQCERT", "demand".to_string()),
        // libldap's own limit on each reply (e.g. to StartTLS).
        ("LDAPTIMEOUT", cfg.timeout.as_secs().to_string()),
    ];
    if let Some(ca) = &cfg.tls_ca_file {
        crate::secure_file::open_if_exists(ca, crate::secure_file::Mode::Policy)
            .and_then(|f| f.map(|_| ()).ok_or_else(|| "no such file".into()))
            .map_err(|e| format!("tls_ca_file {}: {e}", ca.display()))?;
        env.push(("LDAPTLS_CACERT", ca.display().to_string()));
    }
    let args = arguments(cfg, user, secret.as_ref());
    let done = search::run(&program, &args, &env, secret.as_ref(), deadline).map_err(|e| {
        if e == "timed out" {
            format!(
                "no answer from {} within {} s",
                cfg.uris.join(" "),
                cfg.timeout.as_secs()
            )
        } else {
            e
        }
    })?;
    if !done.status.success() {
        return Err(failure(done.status.code(), &done.stderr));
    }
    let entries = ldif::parse(&done.stdout)?;
    match entries.as_slice() {
        [] => Ok(None),
        [entry] => number_of(entry, &cfg.attributes),
        more => Err(format!(
            "{} entries match the filter; it must find exactly one",
            more.len()
        )),
    }
}

/// The argument vector (no shell): options, then `--`, the filter and the
/// attributes, so nothing in them is read as an option.
fn arguments(cfg: &LdapConfig, user: &[u8], secret: Option<&search::SecretPipe>) -> Vec<OsString> {
    let t = cfg.timeout.as_secs().to_string();
    let mut a: Vec<String> = vec!["-LLL".into(), "-x".into(), "-H".into(), cfg.uris.join(" ")];
    if cfg.starttls() {
        a.push("-ZZ".into());
    }
    if let (Some(dn), Some(s)) = (&cfg.bind_dn, secret) {
        a.extend(["-D".into(), dn.clone(), "-y".into(), s.path()]);
    }
    a.extend([
        "-o".into(),
        format!("nettimeout={t}"),
        "-o".into(),
        "ldif_wrap=no".into(),
        "-l".into(),
        t,
        // Two are enough to tell "more than one".
        "-z".into(),
        "2".into(),
        "-s".into(),
        "sub".into(),
        "-b".into(),
        cfg.base.clone(),
        "--".into(),
        filter::for_user(&cfg.filter, user),
    ]);
    a.extend(cfg.attributes.iter().cloned());
    a.into_iter().map(OsString::from).collect()
}

/// The password file's content (one trailing newline dropped: `echo` adds
/// one) in a pipe; the copy in memory is wiped.
fn password_pipe(path: &Path) -> Result<search::SecretPipe, String> {
    let shown = path.display();
    let mut text = crate::secure_file::read(path, crate::secure_file::Mode::Secret, MAX_PASSWORD)
        .map_err(|e| format!("bind_password_file {shown}: {e}"))?;
    let end = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text)
        .len();
    let pipe = if end == 0 {
        Err(format!("bind_password_file {shown} is empty"))
    } else {
        search::SecretPipe::new(&text.as_bytes()[..end])
    };
    crate::config::wipe(&mut text);
    pipe
}

/// What a failed ldapsearch said (its own messages never hold the
/// password), on one line without control characters.
fn failure(code: Option<i32>, stderr: &[u8]) -> String {
    let said: Vec<String> = String::from_utf8_lossy(stderr)
        .lines()
        .map(|l| l.chars().filter(|c| !c.is_control()).collect::<String>())
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .take(4)
        .collect();
    let code = code.map_or("a signal".to_string(), |c| c.to_string());
    let mut text = format!("ldapsearch failed ({code})");
    if code == "4" {
        text.push_str(": more than one entry matches the filter");
    }
    if !said.is_empty() {
        text.push_str(": ");
        text.push_str(&said.join("; "));
    }
    text.chars().take(600).collect()
}

/// The first usable value of the attributes, in the configured order. An
/// entry whose attributes hold only unusable values is an error, not "no
/// number": the directory is wrong and the admin should hear of it.
fn number_of(entry: &ldif::Entry, attributes: &[String]) -> Result<Option<String>, String> {
    let mut seen = 0;
    for attr in attributes {
        for value in entry.values_of(attr) {
            seen += 1;
            if let Some(n) = usable(value) {
                return Ok(Some(n));
            }
        }
    }
    if seen == 0 {
        return Ok(None);
    }
    Err(format!(
        "{}: {seen} value(s) in {}, none of them a phone number",
        crate::conversation::escape_for_display(&entry.dn),
        attributes.join(", ")
    ))
}

/// A value that looks like a phone number: digits with the usual
/// separators (`+` only first), at most 40 characters; trimmed. The module
/// parses and checks it as it does every number.
fn usable(value: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let digits = text.bytes().filter(u8::is_ascii_digit).count();
    let ok = text.len() <= 40
        && digits >= 3
        && text
            .bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_digit() || b" -().".contains(&b) || (b == b'+' && i == 0));
    ok.then(|| text.to_string())
}

/// A line for the admin in the system log (the module runs the helper with
/// stderr on /dev/null, so this is where its reasons end up).
pub fn log_error(msg: &str) {
    if let Ok(log) = crate::syslog::Syslog::connect(None) {
        let _ = log.send(crate::syslog::Severity::Err, msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(values: &[(&str, &str)]) -> ldif::Entry {
        ldif::Entry {
            dn: "uid=a,dc=x".into(),
            values: values
                .iter()
                .map(|(a, v)| (a.to_string(), v.as_bytes().to_vec()))
                .collect(),
        }
    }

    #[test]
    fn the_first_usable_value_in_attribute_order_wins() {
        let attrs = vec!["mobile".to_string(), "telephoneNumber".to_string()];
        let e = entry(&[
            ("telephoneNumber", "+12015550102"),
            ("mobile", "n/a"),
            ("mobile", " +1 (201) 555-0101 "),
        ]);
        assert_eq!(number_of(&e, &attrs), Ok(Some("+1 (201) 555-0101".into())));
        let e = entry(&[("telephoneNumber", "+12015550102"), ("mobile", "call me")]);
        assert_eq!(number_of(&e, &attrs), Ok(Some("+12015550102".into())));
        assert_eq!(number_of(&entry(&[("cn", "a")]), &attrs), Ok(None));
        assert!(number_of(&entry(&[("mobile", "n/a")]), &attrs)
            .unwrap_err()
            .contains("none of them"));
    }

    #[test]
    fn usable_values() {
        assert_eq!(usable(b"+12015550101"), Some("+12015550101".into()));
        assert_eq!(usable(b"(201) 555.0101"), Some("(201) 555.0101".into()));
        assert_eq!(usable(b"1+2015550101"), None);
        assert_eq!(usable(b"+1 201 555 0101\n+1 666"), None);
        assert_eq!(usable(b"12"), None);
        assert_eq!(usable(b"\xff123"), None);
        assert_eq!(usable(&[b'1'; 41]), None);
    }

    #[test]
    fn the_argument_vector_ends_options_before_the_filter() {
        let mut cfg = LdapConfig::parse(
            "uri = \"ldap://h\"\nbase = \"dc=x\"\nattributes = [\"mobile\", \"telephoneNumber\"]\n",
        )
        .unwrap();
        let args = arguments(&cfg, b"-o*", None);
        let args: Vec<&str> = args.iter().map(|a| a.to_str().unwrap()).collect();
        assert!(args.contains(&"-ZZ"));
        assert!(!args.contains(&"-D"));
        let dd = args.iter().position(|a| *a == "--").unwrap();
        assert_eq!(
            &args[dd + 1..],
            ["(uid=-o\\2a)", "mobile", "telephoneNumber"]
        );
        cfg.uris = vec!["ldaps://h".into()];
        assert!(!arguments(&cfg, b"a", None).iter().any(|a| a == "-ZZ"));
    }

    #[test]
    fn failures_are_one_line() {
        let f = failure(
            Some(49),
            b"ldap_bind: Invalid credentials (49)\n\tadditional info: x\x1b[2J\n",
        );
        assert_eq!(
            f,
            "ldapsearch failed (49): ldap_bind: Invalid credentials (49); additional info: x[2J"
        );
        assert!(failure(Some(4), b"").contains("more than one"));
    }
}
