//! The TOML configuration: parsing, defaults and validation.
//!
//! Every problem is reported as one line that names the key, so the module's
//! syslog line and `twilio-2fa check-config` say the same thing.

use crate::method::Method;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub const DEFAULT_PATH: &str = "/etc/twilio-2fa/config.toml";

/// A configuration that parsed and passed every check.
#[derive(Debug, Clone)]
pub struct Config {
    pub account_sid: String,
    pub auth_token: Secret,
    pub service_sid: String,
    pub verify_url: String,
    pub lookup_url: String,
    pub allowed_methods: Vec<Method>,
    pub service_name: Option<String>,
    pub obfuscate: bool,
    pub retry_time: u64,
    pub max_attempts: u32,
    pub http_timeout: u64,
    pub default_region: String,
    pub phones_file: Option<PathBuf>,
    pub phones_directory: Option<PathBuf>,
    pub labels: BTreeMap<Method, String>,
    pub event_log: Option<PathBuf>,
    pub state_dir: PathBuf,
    pub max_attempts_timeout: u64,
    pub remember: u64,
    /// `[phones] command`, split into program and arguments.
    pub phones_command: Option<Vec<String>>,
    pub allow_register: bool,
    pub register_optional: bool,
    pub allow_change: bool,
    pub allowed_countries: Vec<String>,
    pub disallowed_countries: Vec<String>,
    pub carrier_lookup: bool,
    /// Twilio Lookup v2 line types; "voip" already expanded.
    pub allowed_carrier_types: Vec<String>,
}

/// Twilio Lookup v2 `line_type_intelligence.type` values.
pub const LINE_TYPES: [&str; 12] = [
    "mobile",
    "landline",
    "fixedVoip",
    "nonFixedVoip",
    "personal",
    "tollFree",
    "premium",
    "sharedCost",
    "uan",
    "voicemail",
    "pager",
    "unknown",
];

pub const DEFAULT_STATE_DIR: &str = "/var/lib/twilio-2fa";

/// A string that never shows up in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Secret(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Why a configuration cannot be used. The text names the file and the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    account_sid: String,
    auth_token: Option<String>,
    auth_token_file: Option<PathBuf>,
    service_sid: String,
    #[serde(default = "default_verify_url")]
    verify_url: String,
    #[serde(default = "default_lookup_url")]
    lookup_url: String,
    #[serde(default = "Method::all")]
    allowed_methods: Vec<Method>,
    service_name: Option<String>,
    #[serde(default = "yes")]
    obfuscate: bool,
    #[serde(default = "default_retry_time")]
    retry_time: u64,
    #[serde(default = "default_max_attempts")]
    max_attempts: u32,
    #[serde(default = "default_http_timeout")]
    http_timeout: u64,
    event_log: Option<PathBuf>,
    #[serde(default = "default_state_dir")]
    state_dir: PathBuf,
    #[serde(default = "default_max_attempts_timeout")]
    max_attempts_timeout: u64,
    #[serde(default)]
    remember: u64,
    #[serde(default)]
    allow_register: bool,
    #[serde(default)]
    register_optional: bool,
    #[serde(default = "yes")]
    allow_change: bool,
    #[serde(default)]
    phone_number: RawPhoneNumber,
    #[serde(default)]
    phones: RawPhones,
    #[serde(default)]
    methods: BTreeMap<Method, RawMethod>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPhoneNumber {
    #[serde(default = "default_region")]
    default_region: String,
    #[serde(default = "default_countries")]
    allowed_countries: Vec<String>,
    #[serde(default)]
    disallowed_countries: Vec<String>,
    #[serde(default = "yes")]
    carrier_lookup: bool,
    #[serde(default = "default_carrier_types")]
    allowed_carrier_types: Vec<String>,
}

impl Default for RawPhoneNumber {
    fn default() -> Self {
        RawPhoneNumber {
            default_region: default_region(),
            allowed_countries: default_countries(),
            disallowed_countries: vec![],
            carrier_lookup: true,
            allowed_carrier_types: default_carrier_types(),
        }
    }
}

fn default_countries() -> Vec<String> {
    vec!["US".into()]
}
fn default_carrier_types() -> Vec<String> {
    vec!["mobile".into()]
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPhones {
    file: Option<PathBuf>,
    directory: Option<PathBuf>,
    command: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMethod {
    label: String,
}

fn default_verify_url() -> String {
    "https://verify.twilio.com".into()
}
fn default_lookup_url() -> String {
    "https://lookups.twilio.com".into()
}
fn yes() -> bool {
    true
}
fn default_retry_time() -> u64 {
    180
}
fn default_max_attempts() -> u32 {
    5
}
fn default_http_timeout() -> u64 {
    10
}
fn default_state_dir() -> PathBuf {
    PathBuf::from(DEFAULT_STATE_DIR)
}
fn default_max_attempts_timeout() -> u64 {
    600
}
fn default_region() -> String {
    "US".into()
}

impl Config {
    /// Reads, checks and parses the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display();
        check_file_safety(path).map_err(|e| ConfigError(format!("config {shown}: {e}")))?;
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("config {shown}: cannot read: {e}")))?;
        Config::parse(&text).map_err(|e| ConfigError(format!("config {shown}: {e}")))
    }

    /// Parses configuration text; file paths inside it (auth_token_file) are read.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError(toml_error(text, &e)))?;
        raw.validate()
    }
}

/// Turns toml's multi-line report into one line naming the key and line.
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim().to_string();
    let Some(span) = e.span() else {
        return msg;
    };
    let before = &text[..span.start.min(text.len())];
    let line_no = before.matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("");
    // The table the line is in, so nested keys read "phone_number.default_region".
    let table = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    match line.split_once('=') {
        Some((key, _))
            if !msg.starts_with("unknown field") && !msg.starts_with("missing field") =>
        {
            let key = key.trim();
            let full = match table {
                Some(t) if !t.is_empty() => format!("{t}.{key}"),
                _ => key.to_string(),
            };
            format!("{full}: {msg} (line {line_no})")
        }
        _ => format!("{msg} (line {line_no})"),
    }
}

impl RawConfig {
    fn validate(self) -> Result<Config, ConfigError> {
        let err = |s: String| Err(ConfigError(s));
        if !is_sid(&self.account_sid, "AC") {
            return err("account_sid: must be \"AC\" followed by 32 hex digits".into());
        }
        if !is_sid(&self.service_sid, "VA") {
            return err(
                "service_sid: must be \"VA\" followed by 32 hex digits (the Verify service SID)"
                    .into(),
            );
        }
        let auth_token = match (self.auth_token, &self.auth_token_file) {
            (Some(_), Some(_)) => {
                return err("auth_token and auth_token_file: set only one of them".into())
            }
            (None, None) => return err("auth_token: missing (or set auth_token_file)".into()),
            (Some(t), None) => t,
            (None, Some(path)) => read_token_file(path)?,
        };
        if auth_token.is_empty() || auth_token.chars().any(|c| c.is_control()) {
            return err("auth_token: must be a non-empty string without control characters".into());
        }
        check_url("verify_url", &self.verify_url)?;
        check_url("lookup_url", &self.lookup_url)?;
        if self.allowed_methods.is_empty() {
            return err("allowed_methods: must name at least one of sms, call, whatsapp".into());
        }
        let mut seen = Vec::new();
        for m in &self.allowed_methods {
            if seen.contains(m) {
                return err(format!("allowed_methods: {} is listed twice", m.name()));
            }
            seen.push(*m);
        }
        if let Some(name) = &self.service_name {
            if name.chars().count() > 30 || name.chars().any(|c| c.is_control()) {
                return err("service_name: at most 30 characters, no control characters".into());
            }
        }
        if !(1..=20).contains(&self.max_attempts) {
            return err("max_attempts: must be between 1 and 20".into());
        }
        if self.retry_time > 3600 {
            return err("retry_time: must be between 0 and 3600 seconds".into());
        }
        if !(1..=120).contains(&self.http_timeout) {
            return err("http_timeout: must be between 1 and 120 seconds".into());
        }
        let region = self.phone_number.default_region.clone();
        if !region.is_empty() && crate::phone::region_id(&region).is_none() {
            return err(format!(
                "phone_number.default_region: \"{region}\" is not an ISO country code (e.g. \"US\"), or \"\" to require numbers starting with +"
            ));
        }
        for (key, p) in [
            ("phones.file", &self.phones.file),
            ("phones.directory", &self.phones.directory),
        ] {
            if let Some(p) = p {
                if !p.is_absolute() {
                    return err(format!("{key}: must be an absolute path"));
                }
            }
        }
        if !self.state_dir.is_absolute() {
            return err("state_dir: must be an absolute path".into());
        }
        if self.max_attempts_timeout > 30 * 86400 {
            return err(
                "max_attempts_timeout: must be between 0 and 2592000 seconds (30 days)".into(),
            );
        }
        if self.remember > 30 * 86400 {
            return err("remember: must be between 0 and 2592000 seconds (30 days)".into());
        }
        if let Some(p) = &self.event_log {
            if !p.is_absolute() {
                return err("event_log: must be an absolute path".into());
            }
        }
        let phones_command = match &self.phones.command {
            None => None,
            Some(c) => {
                let argv: Vec<String> = c.split_whitespace().map(String::from).collect();
                if argv.is_empty() || !argv[0].starts_with('/') {
                    return err("phones.command: must start with the program's absolute path, e.g. \"/usr/local/bin/phone-of %u\"".into());
                }
                Some(argv)
            }
        };
        let pn = &self.phone_number;
        for (key, list) in [
            ("phone_number.allowed_countries", &pn.allowed_countries),
            (
                "phone_number.disallowed_countries",
                &pn.disallowed_countries,
            ),
        ] {
            for c in list {
                if crate::phone::region_id(c).is_none() || c.len() != 2 || c.to_uppercase() != *c {
                    return err(format!(
                        "{key}: \"{c}\" is not an ISO country code such as \"US\""
                    ));
                }
            }
        }
        if pn.allowed_countries.is_empty() {
            return err("phone_number.allowed_countries: must name at least one country".into());
        }
        let mut carrier_types = Vec::new();
        for t in &pn.allowed_carrier_types {
            match t.as_str() {
                "voip" => {
                    carrier_types.extend(["fixedVoip".to_string(), "nonFixedVoip".to_string()])
                }
                t if LINE_TYPES.contains(&t) => carrier_types.push(t.to_string()),
                t => {
                    return err(format!(
                        "phone_number.allowed_carrier_types: \"{t}\" is not one of {} or voip",
                        LINE_TYPES.join(", ")
                    ))
                }
            }
        }
        if carrier_types.is_empty() {
            return err(
                "phone_number.allowed_carrier_types: must name at least one line type".into(),
            );
        }
        if self.register_optional && !self.allow_register {
            return err("register_optional: only meaningful with allow_register = true".into());
        }
        let mut labels = BTreeMap::new();
        for (m, raw) in self.methods {
            let label = raw.label.trim().to_string();
            if label.is_empty()
                || label.chars().count() > 40
                || label.chars().any(|c| c.is_control())
            {
                return err(format!(
                    "methods.{}.label: 1 to 40 characters, no control characters",
                    m.name()
                ));
            }
            labels.insert(m, label);
        }
        Ok(Config {
            account_sid: self.account_sid,
            auth_token: Secret(auth_token),
            service_sid: self.service_sid,
            verify_url: self.verify_url.trim_end_matches('/').to_string(),
            lookup_url: self.lookup_url.trim_end_matches('/').to_string(),
            allowed_methods: self.allowed_methods,
            service_name: self.service_name,
            obfuscate: self.obfuscate,
            retry_time: self.retry_time,
            max_attempts: self.max_attempts,
            http_timeout: self.http_timeout,
            default_region: region,
            allowed_countries: self.phone_number.allowed_countries,
            disallowed_countries: self.phone_number.disallowed_countries,
            carrier_lookup: self.phone_number.carrier_lookup,
            allowed_carrier_types: carrier_types,
            phones_command,
            allow_register: self.allow_register,
            register_optional: self.register_optional,
            allow_change: self.allow_change,
            phones_file: self.phones.file,
            phones_directory: self.phones.directory,
            labels,
            event_log: self.event_log,
            state_dir: self.state_dir,
            max_attempts_timeout: self.max_attempts_timeout,
            remember: self.remember,
        })
    }
}

impl Config {
    /// The label shown to users for a method: `[methods.<name>] label`, or the default.
    pub fn label(&self, m: Method) -> &str {
        self.labels
            .get(&m)
            .map(String::as_str)
            .unwrap_or(m.default_label())
    }

    /// A one-screen summary for `twilio-2fa check-config`; never shows secrets.
    pub fn summary(&self) -> String {
        let methods: Vec<String> = self
            .allowed_methods
            .iter()
            .map(|m| format!("{} ({})", m.name(), self.label(*m)))
            .collect();
        let path = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "-".into())
        };
        let mut out = format!(
            "account_sid      {}\nservice_sid      {}\nverify_url       {}\nallowed_methods  {}\nmax_attempts     {} (lockout {} s)\nretry_time       {} s\nremember         {} s\nstate_dir        {}\nhttp_timeout     {} s\nobfuscate        {}\ndefault_region   {}\ncountries        {} (not {})\ncarrier_lookup   {} (allowed: {})\nphones.file      {}\nphones.directory {}\nphones.command   {}\nallow_register   {}\nallow_change     {}\n",
            self.account_sid,
            self.service_sid,
            self.verify_url,
            methods.join(", "),
            self.max_attempts,
            self.max_attempts_timeout,
            self.retry_time,
            self.remember,
            self.state_dir.display(),
            self.http_timeout,
            self.obfuscate,
            if self.default_region.is_empty() { "(none: numbers must start with +)" } else { &self.default_region },
            self.allowed_countries.join(", "),
            if self.disallowed_countries.is_empty() { "-".into() } else { self.disallowed_countries.join(", ") },
            self.carrier_lookup,
            self.allowed_carrier_types.join(", "),
            path(&self.phones_file),
            path(&self.phones_directory),
            self.phones_command.as_ref().map(|c| c.join(" ")).unwrap_or_else(|| "-".into()),
            self.allow_register,
            self.allow_change,
        );
        for note in self.notes() {
            out.push_str(&format!("note: {note}\n"));
        }
        out
    }

    /// Settings that are valid but deserve the admin's attention.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.allow_register && self.phones_directory.is_none() {
            notes.push(
                "allow_register is on but no [phones] directory is set, so registration is off: there is nowhere to store numbers".into(),
            );
        } else if self.allow_register {
            notes.push(
                "allow_register is on: anyone who knows the password of a user without a number can register their own phone as that user's second factor; meant for a rollout period".into(),
            );
        }
        if self.allow_change && self.phones_directory.is_none() {
            notes.push("allow_change has no effect without a [phones] directory".into());
        }
        notes
    }
}

fn is_sid(s: &str, prefix: &str) -> bool {
    s.len() == 34 && s.starts_with(prefix) && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Only https, except plain http to a loopback address (the simulator).
fn check_url(key: &str, url: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| Err(ConfigError(format!("{key}: {why}")));
    let rest = if let Some(rest) = url.strip_prefix("https://") {
        rest
    } else if let Some(rest) = url.strip_prefix("http://") {
        let host = host_of(rest);
        let loopback = host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .map(|ip| ip.is_loopback())
                .unwrap_or(false);
        if !loopback {
            return bad(
                "must start with https:// (http:// is allowed only for loopback addresses)",
            );
        }
        rest
    } else {
        return bad("must start with https://");
    };
    if host_of(rest).is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("is not a valid URL");
    }
    Ok(())
}

fn host_of(rest: &str) -> &str {
    let authority = rest.split('/').next().unwrap_or("");
    if authority.starts_with('[') {
        return authority
            .split(']')
            .next()
            .map(|h| &authority[..h.len() + 1])
            .unwrap_or("");
    }
    authority.split(':').next().unwrap_or("")
}

fn read_token_file(path: &Path) -> Result<String, ConfigError> {
    let shown = path.display();
    check_file_safety(path).map_err(|e| ConfigError(format!("auth_token_file {shown}: {e}")))?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("auth_token_file {shown}: cannot read: {e}")))?;
    Ok(text.trim().to_string())
}

/// StrictModes-style check: a file that holds secrets or policy must belong to
/// root (or to whoever runs us) and must not be writable by anyone else.
pub fn check_file_safety(path: &Path) -> Result<(), String> {
    let md = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
    if !md.is_file() {
        return Err("is not a regular file".into());
    }
    let euid = unsafe { libc::geteuid() };
    if md.uid() != 0 && md.uid() != euid {
        return Err(format!(
            "is owned by uid {}, must be owned by root",
            md.uid()
        ));
    }
    if md.mode() & 0o022 != 0 {
        return Err(format!(
            "is writable by group or others (mode {:04o}); run chmod 600",
            md.mode() & 0o7777
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token = "secret"
service_sid = "VA0123456789abcdef0123456789abcdef"
"#;

    #[test]
    fn minimal_config_gets_documented_defaults() {
        let c = Config::parse(MINIMAL).unwrap();
        assert_eq!(c.verify_url, "https://verify.twilio.com");
        assert_eq!(c.allowed_methods, Method::all());
        assert_eq!((c.retry_time, c.max_attempts, c.http_timeout), (180, 5, 10));
        assert_eq!((c.max_attempts_timeout, c.remember), (600, 0));
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/twilio-2fa"));
        assert!(c.obfuscate);
        assert_eq!(c.default_region, "US");
        assert_eq!(c.label(Method::Sms), "text message");
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::parse(&format!("{MINIMAL}\nmax_atempts = 3\n")).unwrap_err();
        assert!(e.0.contains("max_atempts"), "{e}");
    }

    #[test]
    fn wrong_type_is_named() {
        let e = Config::parse(&format!("{MINIMAL}\nretry_time = \"soon\"\n")).unwrap_err();
        assert!(e.0.starts_with("retry_time: "), "{e}");
        let e =
            Config::parse(&format!("{MINIMAL}[phone_number]\ndefault_region = 1\n")).unwrap_err();
        assert!(e.0.starts_with("phone_number.default_region: "), "{e}");
    }

    #[test]
    fn missing_required_key_is_named() {
        let e = Config::parse(
            "auth_token = \"x\"\nservice_sid = \"VA0123456789abcdef0123456789abcdef\"\n",
        )
        .unwrap_err();
        assert!(e.0.contains("account_sid"), "{e}");
    }

    #[test]
    fn secret_never_in_debug_output() {
        let c = Config::parse(MINIMAL).unwrap();
        assert!(!format!("{c:?}").contains("secret"));
        assert!(!c.summary().contains("secret"));
    }

    #[test]
    fn plain_http_only_for_loopback() {
        let ok = format!("{MINIMAL}verify_url = \"http://127.0.0.1:8080\"\n");
        assert!(Config::parse(&ok).is_ok());
        let ok6 = format!("{MINIMAL}verify_url = \"http://[::1]:8080\"\n");
        assert!(Config::parse(&ok6).is_ok());
        let bad = format!("{MINIMAL}verify_url = \"http://verify.example.com\"\n");
        assert!(Config::parse(&bad).unwrap_err().0.contains("verify_url"));
        let sneaky = format!("{MINIMAL}verify_url = \"http://127.0.0.1.evil.com\"\n");
        assert!(Config::parse(&sneaky).is_err());
    }

    #[test]
    fn bad_values_are_rejected_with_key() {
        for (line, key) in [
            ("allowed_methods = []", "allowed_methods"),
            ("allowed_methods = [\"sms\", \"sms\"]", "allowed_methods"),
            ("allowed_methods = [\"email\"]", "email"),
            ("max_attempts = 0", "max_attempts"),
            ("http_timeout = 0", "http_timeout"),
            ("auth_token_file = \"/nonexistent\"", "auth_token"),
            ("[phone_number]\ndefault_region = \"XX\"", "default_region"),
            ("[phones]\nfile = \"relative.toml\"", "phones.file"),
            ("[methods.sms]\nlabel = \"\"", "methods.sms.label"),
        ] {
            let e = Config::parse(&format!("{MINIMAL}{line}\n")).unwrap_err();
            assert!(e.0.contains(key), "{line}: {e}");
        }
        let e = Config::parse(&MINIMAL.replace("VA0123", "VX0123")).unwrap_err();
        assert!(e.0.contains("service_sid"));
    }
}
