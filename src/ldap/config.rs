//! The helper's own config (`/etc/twilio-2fa/ldap.toml`): where the
//! directory is, how to find the user's entry, which attributes hold the
//! number. Root's, mode 0600 (it names the bind password file).

use super::filter;
use crate::secure_file::{self, Mode};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_PATH: &str = "/etc/twilio-2fa/ldap.toml";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapConfig {
    /// Tried in order; all `ldaps://` (TLS from the start) or all `ldap://`
    /// (StartTLS, required).
    pub uris: Vec<String>,
    pub base: String,
    /// With `{user}` where the escaped user name goes.
    pub filter: String,
    /// Looked at in this order; the first usable value wins.
    pub attributes: Vec<String>,
    pub bind_dn: Option<String>,
    pub bind_password_file: Option<PathBuf>,
    /// A private CA to trust instead of the system store.
    pub tls_ca_file: Option<PathBuf>,
    /// For the whole search: connect, TLS, bind, search.
    pub timeout: Duration,
}

impl LdapConfig {
    pub fn starttls(&self) -> bool {
        self.uris.iter().all(|u| u.starts_with("ldap://"))
    }

    /// Reads and checks `path` (root's, not readable by others).
    pub fn load(path: &Path) -> Result<LdapConfig, String> {
        let text = secure_file::read(path, Mode::Secret, 64 * 1024)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        LdapConfig::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<LdapConfig, String> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| e.message().to_string())?;
        const KNOWN: [&str; 8] = [
            "uri",
            "base",
            "filter",
            "attributes",
            "bind_dn",
            "bind_password_file",
            "tls_ca_file",
            "timeout",
        ];
        if let Some(k) = table.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(format!("unknown key {k:?}"));
        }
        let string = |key: &str| -> Result<Option<String>, String> {
            match table.get(key) {
                None => Ok(None),
                Some(toml::Value::String(s)) if s.is_empty() => Err(format!("{key} is empty")),
                Some(toml::Value::String(s)) if s.chars().any(char::is_control) => {
                    Err(format!("{key} contains control characters"))
                }
                Some(toml::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(format!("{key} must be a string")),
            }
        };
        let path = |key: &str| -> Result<Option<PathBuf>, String> {
            match string(key)? {
                Some(p) if !p.starts_with('/') => Err(format!("{key} must be an absolute path")),
                p => Ok(p.map(PathBuf::from)),
            }
        };
        let list = |key: &str| -> Result<Option<Vec<String>>, String> {
            match table.get(key) {
                None => Ok(None),
                Some(toml::Value::String(s)) => Ok(Some(vec![s.clone()])),
                Some(toml::Value::Array(a)) => a
                    .iter()
                    .map(|v| v.as_str().map(String::from))
                    .collect::<Option<Vec<_>>>()
                    .map(Some)
                    .ok_or_else(|| format!("{key} must be a list of strings")),
                Some(_) => Err(format!("{key} must be a string or a list of strings")),
            }
        };

        let uris = list("uri")?.ok_or("uri is missing (e.g. \"ldaps://ldap.example.com\")")?;
        check_uris(&uris)?;
        let base = string("base")?.ok_or("base is missing (e.g. \"dc=example,dc=com\")")?;
        let filter = string("filter")?.unwrap_or_else(|| "(uid={user})".into());
        filter::check_template(&filter).map_err(|e| format!("filter {filter:?} {e}"))?;
        let attributes = list("attributes")?.unwrap_or_else(|| vec!["mobile".into()]);
        check_attributes(&attributes)?;
        let bind_dn = string("bind_dn")?;
        let bind_password_file = path("bind_password_file")?;
        if bind_dn.is_some() != bind_password_file.is_some() {
            return Err(
                "bind_dn and bind_password_file go together (neither: anonymous bind)".into(),
            );
        }
        let tls_ca_file = path("tls_ca_file")?;
        let timeout = match table.get("timeout") {
            None => 3,
            Some(toml::Value::Integer(n)) if (1..=30).contains(n) => *n as u64,
            Some(_) => return Err("timeout must be a whole number of seconds from 1 to 30".into()),
        };
        Ok(LdapConfig {
            uris,
            base,
            filter,
            attributes,
            bind_dn,
            bind_password_file,
            tls_ca_file,
            timeout: Duration::from_secs(timeout),
        })
    }
}

/// Only TLS: `ldaps://host[:port]` or `ldap://host[:port]` (then StartTLS is
/// required), all of one kind, nothing after the host.
fn check_uris(uris: &[String]) -> Result<(), String> {
    if uris.is_empty() {
        return Err("uri: name at least one server".into());
    }
    for u in uris {
        let host = u
            .strip_prefix("ldaps://")
            .or_else(|| u.strip_prefix("ldap://"))
            .ok_or_else(|| {
                format!(
                    "uri {u:?}: must start with ldaps:// or ldap:// (StartTLS is then required)"
                )
            })?;
        let host = host.strip_suffix('/').unwrap_or(host);
        let ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b));
        if !ok {
            return Err(format!("uri {u:?}: must be a host and optional port only"));
        }
    }
    let ldaps = uris.iter().filter(|u| u.starts_with("ldaps://")).count();
    if ldaps != 0 && ldaps != uris.len() {
        return Err("uri: all ldaps:// or all ldap:// (StartTLS), not both".into());
    }
    Ok(())
}

fn check_attributes(attrs: &[String]) -> Result<(), String> {
    if attrs.is_empty() || attrs.len() > 10 {
        return Err("attributes: name 1 to 10 attributes".into());
    }
    for a in attrs {
        let ok = a.len() <= 64
            && a.starts_with(|c: char| c.is_ascii_alphabetic())
            && a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return Err(format!("attributes: {a:?} is not an attribute name"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "uri = \"ldaps://ldap.example.com\"\nbase = \"dc=example,dc=com\"\n";

    #[test]
    fn defaults() {
        let c = LdapConfig::parse(MINIMAL).unwrap();
        assert_eq!(c.uris, vec!["ldaps://ldap.example.com"]);
        assert_eq!(c.filter, "(uid={user})");
        assert_eq!(c.attributes, vec!["mobile"]);
        assert_eq!(c.timeout, Duration::from_secs(3));
        assert_eq!((c.bind_dn, c.tls_ca_file), (None, None));
        assert!(!LdapConfig::parse(MINIMAL).unwrap().starttls());
    }

    #[test]
    fn everything_set() {
        let c = LdapConfig::parse(
            "uri = [\"ldap://dc1.corp.example.com\", \"ldap://dc2.corp.example.com:389/\"]\n\
             base = \"DC=corp,DC=example,DC=com\"\n\
             filter = \"(&(objectClass=user)(sAMAccountName={user}))\"\n\
             attributes = [\"mobile\", \"telephoneNumber\"]\n\
             bind_dn = \"CN=svc-2fa,OU=Service,DC=corp,DC=example,DC=com\"\n\
             bind_password_file = \"/etc/twilio-2fa/ldap.secret\"\n\
             tls_ca_file = \"/etc/twilio-2fa/corp-ca.pem\"\n\
             timeout = 4\n",
        )
        .unwrap();
        assert!(c.starttls());
        assert_eq!(c.attributes, vec!["mobile", "telephoneNumber"]);
        assert_eq!(c.timeout, Duration::from_secs(4));
    }

    #[test]
    fn mistakes_are_refused() {
        let with = |extra: &str| LdapConfig::parse(&format!("{MINIMAL}{extra}"));
        let refused = |text: &str, says: &str| {
            let e = LdapConfig::parse(text).unwrap_err();
            assert!(e.contains(says), "{text:?}: {e}");
        };
        refused("base = \"dc=x\"\n", "uri is missing");
        refused("uri = \"ldaps://h\"\n", "base is missing");
        refused("uri = \"http://h\"\nbase = \"dc=x\"\n", "ldaps://");
        refused("uri = \"ldapi:///\"\nbase = \"dc=x\"\n", "ldaps://");
        refused("uri = \"ldaps://h/dc=x?mobile\"\nbase = \"dc=x\"\n", "host");
        refused("uri = \"ldaps://a b\"\nbase = \"dc=x\"\n", "host");
        refused(
            "uri = [\"ldaps://a\", \"ldap://b\"]\nbase = \"dc=x\"\n",
            "not both",
        );
        refused("uri = []\nbase = \"dc=x\"\n", "at least one");
        assert!(with("filter = \"(uid=alice)\"\n")
            .unwrap_err()
            .contains("{user}"));
        assert!(with("attributes = [\"-x\"]\n").is_err());
        assert!(with("attributes = []\n").is_err());
        assert!(with("bind_dn = \"cn=x\"\n")
            .unwrap_err()
            .contains("together"));
        assert!(with("bind_password_file = \"rel\"\nbind_dn = \"cn=x\"\n")
            .unwrap_err()
            .contains("absolute"));
        assert!(with("timeout = 0\n").is_err());
        assert!(with("timeout = 31\n").is_err());
        assert!(with("base2 = \"x\"\n").unwrap_err().contains("unknown key"));
        assert!(
            with("bind_dn = \"cn=a\\nb\"\nbind_password_file = \"/x\"\n")
                .unwrap_err()
                .contains("control")
        );
    }
}
