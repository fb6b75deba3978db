//! `[rate_limits]`: Twilio Verify's Service Rate Limits, declared in the
//! config and shared by every host that uses the same Verify service.
//!
//! Each send names, for every declared rate limit, the value it is counted
//! under: a keyed hash (HMAC-SHA256 with the fleet's secret) of the user
//! name, the remote address, or both, so Twilio never sees either in clear
//! (Twilio asks for no PII in rate-limit values). Hosts with the same secret
//! send the same value for the same user, which is what makes the count
//! fleet-wide.

use crate::config::{ConfigError, Secret};
use serde::Deserialize;
use std::collections::BTreeSet;

/// Bounds this module checks (Twilio documents no ranges for them).
pub const MAX_NAME_LEN: usize = 64;
pub const MAX_BUCKET_MAX: u64 = 100_000;
pub const MAX_INTERVAL: u64 = 86_400;
/// Shortest secret accepted, in bytes: 32 random bytes in base64 are 44.
pub const MIN_SECRET_LEN: usize = 32;

/// What a rate limit counts sends by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum KeyKind {
    #[serde(rename = "user")]
    User,
    #[serde(rename = "rhost")]
    Rhost,
    #[serde(rename = "user+rhost")]
    UserRhost,
}

impl KeyKind {
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::User => "user",
            KeyKind::Rhost => "rhost",
            KeyKind::UserRhost => "user+rhost",
        }
    }
}

/// At most `max` sends per `interval` seconds for one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bucket {
    pub max: u64,
    pub interval: u64,
}

/// One `[[rate_limits.limit]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Twilio's `UniqueName`, and the key in a send's `RateLimits`.
    pub name: String,
    pub key: KeyKind,
    pub buckets: Vec<Bucket>,
}

/// `[rate_limits]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimits {
    secret_file: Option<std::path::PathBuf>,
    #[serde(default)]
    limit: Vec<RateLimit>,
}

/// `[rate_limits]`, checked.
#[derive(Debug, Clone)]
pub struct RateLimits {
    pub limits: Vec<RateLimit>,
    secret: Secret,
}

impl RawRateLimits {
    /// Checks the section; `read_secret` reads `secret_file` (root-only).
    pub(crate) fn check(
        self,
        read_secret: impl Fn(&str, &std::path::Path) -> Result<String, ConfigError>,
    ) -> Result<RateLimits, ConfigError> {
        let err = |s: String| Err(ConfigError(s));
        let Some(path) = &self.secret_file else {
            return err("rate_limits.secret_file: missing: a root-only file with a random secret shared by every host (e.g. `head -c 32 /dev/urandom | base64`)".into());
        };
        if !path.is_absolute() {
            return err("rate_limits.secret_file: must be an absolute path".into());
        }
        let secret = Secret::new(read_secret("rate_limits.secret_file", path)?);
        if secret.expose().len() < MIN_SECRET_LEN {
            return err(format!(
                "rate_limits.secret_file: the secret must be at least {MIN_SECRET_LEN} characters (e.g. `head -c 32 /dev/urandom | base64`)"
            ));
        }
        if self.limit.is_empty() {
            return err(
                "rate_limits: declare at least one [[rate_limits.limit]] (name, key, buckets)"
                    .into(),
            );
        }
        let mut names = BTreeSet::new();
        for (i, l) in self.limit.iter().enumerate() {
            let at = format!("rate_limits.limit[{}]", i + 1);
            check_name(&at, &l.name)?;
            if !names.insert(l.name.as_str()) {
                return err(format!(
                    "{at}.name: {:?} is declared twice; each rate limit needs its own name",
                    l.name
                ));
            }
            if l.buckets.is_empty() {
                return err(format!(
                    "{at}.buckets: give at least one bucket, e.g. [{{ max = 3, interval = 600 }}]"
                ));
            }
            let mut intervals = BTreeSet::new();
            for b in &l.buckets {
                if !(1..=MAX_BUCKET_MAX).contains(&b.max) {
                    return err(format!(
                        "{at}.buckets: max must be between 1 and {MAX_BUCKET_MAX} (got {})",
                        b.max
                    ));
                }
                if !(1..=MAX_INTERVAL).contains(&b.interval) {
                    return err(format!(
                        "{at}.buckets: interval must be between 1 and {MAX_INTERVAL} seconds (got {})",
                        b.interval
                    ));
                }
                // Twilio refuses a second bucket with the same Interval (60211).
                if !intervals.insert(b.interval) {
                    return err(format!(
                        "{at}.buckets: two buckets with interval {}; Twilio allows one bucket per interval",
                        b.interval
                    ));
                }
            }
        }
        Ok(RateLimits {
            limits: self.limit,
            secret,
        })
    }
}

/// Twilio's `UniqueName`: this module allows letters, digits, `_`, `-`
/// and `.`, at most 64 (a name is no place for PII).
fn check_name(at: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError(format!(
            "{at}.name: must be 1 to {MAX_NAME_LEN} letters, digits, '_', '-' or '.' (Twilio's UniqueName; never a user name or address)"
        )))
    }
}

/// HMAC-SHA256 (the fleet's secret as `key`) over the limit's name, its
/// kind and the value, cut to 128 bits in hex: the same user gets
/// unlinkable values in two limits.
fn hash(key: &ring::hmac::Key, name: &str, kind: KeyKind, clear: &str) -> String {
    let mut ctx = ring::hmac::Context::with_key(key);
    for part in [name, kind.name(), clear] {
        ctx.update(part.as_bytes());
        ctx.update(&[0]);
    }
    ctx.sign().as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl RateLimits {
    /// The `RateLimits` pairs for one send: (unique name, hashed value).
    /// A limit on the remote address is left out when the login has none
    /// (a console login): one shared value would let anyone fill it.
    pub fn values(&self, user: &str, rhost: Option<&str>) -> Vec<(String, String)> {
        let rhost = rhost.filter(|r| !r.is_empty());
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, self.secret.expose().as_bytes());
        self.limits
            .iter()
            .filter_map(|l| {
                let clear = match (l.key, rhost) {
                    (KeyKind::User, _) => user.to_string(),
                    (KeyKind::Rhost, Some(r)) => r.to_string(),
                    (KeyKind::UserRhost, Some(r)) => format!("{user}\0{r}"),
                    (_, None) => return None,
                };
                Some((l.name.clone(), hash(&key, &l.name, l.key, &clear)))
            })
            .collect()
    }

    /// A send's `RateLimits` parameter: a JSON object, as Twilio's helper
    /// libraries send it.
    pub fn param(pairs: &[(String, String)]) -> Option<String> {
        if pairs.is_empty() {
            return None;
        }
        let map: serde_json::Map<String, serde_json::Value> = pairs
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone())))
            .collect();
        Some(serde_json::Value::Object(map).to_string())
    }

    /// The names, for log lines.
    pub fn names(&self) -> String {
        self.limits
            .iter()
            .map(|l| l.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(secret: &str) -> RateLimits {
        RateLimits {
            limits: vec![
                RateLimit {
                    name: "per_user".into(),
                    key: KeyKind::User,
                    buckets: vec![Bucket {
                        max: 3,
                        interval: 600,
                    }],
                },
                RateLimit {
                    name: "per_address".into(),
                    key: KeyKind::Rhost,
                    buckets: vec![Bucket {
                        max: 20,
                        interval: 3600,
                    }],
                },
            ],
            secret: Secret::new(secret.into()),
        }
    }

    #[test]
    fn values_are_keyed_hashes_stable_across_hosts_and_never_clear() {
        let a = limits("s".repeat(32).as_str());
        let v = a.values("alice", Some("192.0.2.7"));
        assert_eq!(v.len(), 2);
        assert_eq!(
            v,
            limits(&"s".repeat(32)).values("alice", Some("192.0.2.7"))
        );
        for (_, h) in &v {
            assert_eq!(h.len(), 32);
            assert!(!h.contains("alice") && !h.contains("192.0.2.7"));
        }
        assert_ne!(v[0].1, a.values("bob", None)[0].1);
        assert_ne!(
            v,
            limits(&"t".repeat(32)).values("alice", Some("192.0.2.7"))
        );
        assert_eq!(a.values("alice", None).len(), 1, "no rhost, no rhost limit");
        let p = RateLimits::param(&v).unwrap();
        assert!(p.starts_with("{\"per_address\":\"") || p.starts_with("{\"per_user\":\""));
    }
}
