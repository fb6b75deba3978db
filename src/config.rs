//! The TOML configuration: parsing, defaults and validation.
//!
//! Every problem is reported as one line that names the key, so the module's
//! syslog line and `twilio-2fa check-config` say the same thing.

use crate::method::Method;
use crate::secure_file::{self, Mode};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};

pub const DEFAULT_PATH: &str = "/etc/twilio-2fa/config.toml";

/// Largest config file we read.
const MAX_CONFIG_FILE: u64 = 1024 * 1024;
/// Largest auth_token_file / api_key_secret_file we read.
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// A configuration that parsed and passed every check.
#[derive(Debug, Clone)]
pub struct Config {
    /// Required with `auth_token`; optional with an API key.
    pub account_sid: Option<String>,
    /// Who we are to Twilio: account SID + auth token, or API key SID + secret.
    pub credentials: Credentials,
    /// A proxy for HTTPS to Twilio, only from here (never from the environment).
    pub http_proxy: Option<String>,
    /// `ca_file`: the only roots HTTPS trusts, instead of the system store.
    pub ca_file: Option<PathBuf>,
    pub only_groups: Vec<String>,
    pub exempt_groups: Vec<String>,
    pub trusted_networks: Vec<crate::net::Cidr>,
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
    /// `[phones] command_timeout`: seconds for the whole exchange with it.
    pub phones_command_timeout: u64,
    pub allow_register: bool,
    pub register_optional: bool,
    pub allow_change: bool,
    pub allowed_countries: Vec<String>,
    pub disallowed_countries: Vec<String>,
    pub carrier_lookup: bool,
    /// Twilio Lookup v2 line types; "voip" already expanded.
    pub allowed_carrier_types: Vec<String>,
    /// The overridable keys the top level sets (the rest are defaults).
    pub top_level: crate::policy::Overrides,
    /// `[[policy]]` blocks, in file order; the first match wins.
    pub policies: Vec<crate::policy::Policy>,
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

/// HTTP Basic credentials for Twilio.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The account SID (AC...) or API key SID (SK...).
    pub username: String,
    pub secret: Secret,
}

/// A string that never shows up in `Debug` output or logs, and is wiped
/// from memory when dropped. Inline secrets are read from the config
/// straight into one, so no plain copy is left behind.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Secret(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

/// Overwrites a string's bytes before it is freed (best effort: copies made
/// elsewhere, e.g. by the HTTP client, are not reached).
pub fn wipe(s: &mut String) {
    // SAFETY: zero bytes are valid UTF-8.
    for b in unsafe { s.as_bytes_mut() } {
        unsafe { std::ptr::write_volatile(b, 0) };
    }
    s.clear();
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
    account_sid: Option<String>,
    auth_token: Option<Secret>,
    auth_token_file: Option<PathBuf>,
    api_key_sid: Option<String>,
    api_key_secret: Option<Secret>,
    api_key_secret_file: Option<PathBuf>,
    http_proxy: Option<String>,
    ca_file: Option<PathBuf>,
    #[serde(default)]
    only_groups: Vec<String>,
    #[serde(default)]
    exempt_groups: Vec<String>,
    #[serde(default)]
    trusted_networks: Vec<String>,
    service_sid: String,
    #[serde(default = "default_verify_url")]
    verify_url: String,
    #[serde(default = "default_lookup_url")]
    lookup_url: String,
    allowed_methods: Option<Vec<Method>>,
    service_name: Option<String>,
    #[serde(default = "yes")]
    obfuscate: bool,
    retry_time: Option<u64>,
    max_attempts: Option<u32>,
    #[serde(default = "default_http_timeout")]
    http_timeout: u64,
    event_log: Option<PathBuf>,
    #[serde(default = "default_state_dir")]
    state_dir: PathBuf,
    max_attempts_timeout: Option<u64>,
    remember: Option<u64>,
    allow_register: Option<bool>,
    register_optional: Option<bool>,
    allow_change: Option<bool>,
    #[serde(default)]
    phone_number: RawPhoneNumber,
    #[serde(default)]
    phones: RawPhones,
    #[serde(default)]
    methods: BTreeMap<Method, RawMethod>,
    /// Checked block by block so errors name the block: `crate::policy`.
    #[serde(default)]
    policy: Vec<toml::Value>,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPhones {
    file: Option<PathBuf>,
    directory: Option<PathBuf>,
    command: Option<String>,
    #[serde(default = "default_command_timeout")]
    command_timeout: u64,
}

impl Default for RawPhones {
    fn default() -> Self {
        RawPhones {
            file: None,
            directory: None,
            command: None,
            command_timeout: default_command_timeout(),
        }
    }
}

fn default_command_timeout() -> u64 {
    5
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
    /// True when some login may be remembered: the top level's `remember`,
    /// or a `[[policy]]` block's.
    pub fn may_remember(&self) -> bool {
        self.remember > 0
            || self
                .policies
                .iter()
                .any(|p| p.overrides.remember.is_some_and(|r| r > 0))
    }

    /// True when a request may go over HTTPS, so the CA roots are needed.
    pub fn uses_https(&self) -> bool {
        self.verify_url.starts_with("https://") || self.lookup_url.starts_with("https://")
    }

    /// Reads, checks and parses the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display();
        let mut text = secure_file::read(path, Mode::Secret, MAX_CONFIG_FILE)
            .map_err(|e| ConfigError(format!("config {shown}: {e}")))?;
        let parsed = Config::parse(&text).map_err(|e| ConfigError(format!("config {shown}: {e}")));
        // It may hold the auth token inline.
        wipe(&mut text);
        parsed
    }

    /// Parses configuration text; file paths inside it (auth_token_file) are read.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        // Inline secrets go straight into a `Secret` (the parser borrows
        // plain strings from `text`, which `load` wipes): tests/memory.rs.
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError(toml_error(text, &e)))?;
        raw.validate()
    }
}

/// Turns toml's multi-line report into one line naming the key and line.
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    // One line: toml's messages may span several.
    let msg = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
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
    /// Exactly one way to authenticate: auth token (with the account SID) or API key.
    fn credentials(&self) -> Result<Credentials, ConfigError> {
        let err = |s: &str| Err(ConfigError(s.into()));
        let token = secret_from("auth_token", &self.auth_token, &self.auth_token_file)?;
        let key = secret_from(
            "api_key_secret",
            &self.api_key_secret,
            &self.api_key_secret_file,
        )?;
        match (token, &self.api_key_sid, key) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                err("auth_token and api_key_*: set one way to authenticate, not both")
            }
            (Some(secret), None, None) => match &self.account_sid {
                Some(a) => Ok(Credentials { username: a.clone(), secret }),
                None => err("account_sid: missing (required with auth_token)"),
            },
            (None, Some(sid), Some(secret)) if is_sid(sid, "SK") => Ok(Credentials {
                username: sid.clone(),
                secret,
            }),
            (None, Some(_), Some(_)) => err("api_key_sid: must be \"SK\" followed by 32 hex digits"),
            (None, Some(_), None) => err("api_key_secret: missing (or set api_key_secret_file)"),
            (None, None, Some(_)) => err("api_key_sid: missing (required with api_key_secret)"),
            (None, None, None) => err(
                "auth_token: missing: set auth_token (or auth_token_file) with account_sid, or api_key_sid with api_key_secret (or api_key_secret_file)",
            ),
        }
    }

    fn validate(mut self) -> Result<Config, ConfigError> {
        let err = |s: String| Err(ConfigError(s));
        if let Some(a) = &self.account_sid {
            if !is_sid(a, "AC") {
                return err("account_sid: must be \"AC\" followed by 32 hex digits".into());
            }
        }
        if !is_sid(&self.service_sid, "VA") {
            return err(
                "service_sid: must be \"VA\" followed by 32 hex digits (the Verify service SID)"
                    .into(),
            );
        }
        let credentials = self.credentials()?;
        check_url("verify_url", &self.verify_url)?;
        check_url("lookup_url", &self.lookup_url)?;
        let top_level = self.overrides();
        top_level.check("")?;
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
        if self.ca_file.as_ref().is_some_and(|p| !p.is_absolute()) {
            return err("ca_file: must be an absolute path".into());
        }
        if let Some(p) = &self.event_log {
            if !p.is_absolute() {
                return err("event_log: must be an absolute path".into());
            }
        }
        if let Some(p) = &self.http_proxy {
            let host = p.strip_prefix("http://").map(host_of).unwrap_or("");
            if host.is_empty() || p.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return err("http_proxy: must be an http:// URL, e.g. \"http://proxy.example.com:3128\" (HTTPS to Twilio is tunnelled through it)".into());
            }
        }
        for (key, groups) in [
            ("only_groups", &self.only_groups),
            ("exempt_groups", &self.exempt_groups),
        ] {
            if groups
                .iter()
                .any(|g| g.is_empty() || g.chars().any(|c| c.is_control() || c.is_whitespace()))
            {
                return err(format!(
                    "{key}: group names must be non-empty, without spaces or control characters"
                ));
            }
        }
        let trusted_networks = self
            .trusted_networks
            .iter()
            .map(|n| crate::net::Cidr::parse(n))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError(format!("trusted_networks: {e}")))?;
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
        // The program is asked before the code is sent, while the user waits.
        if !(1..=30).contains(&self.phones.command_timeout) {
            return err("phones.command_timeout: must be between 1 and 30 seconds".into());
        }
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
        let policy = std::mem::take(&mut self.policy);
        let mut cfg = Config {
            account_sid: self.account_sid.clone(),
            credentials,
            http_proxy: self.http_proxy.clone(),
            ca_file: self.ca_file.clone(),
            only_groups: self.only_groups.clone(),
            exempt_groups: self.exempt_groups.clone(),
            trusted_networks,
            service_sid: self.service_sid,
            verify_url: self.verify_url.trim_end_matches('/').to_string(),
            lookup_url: self.lookup_url.trim_end_matches('/').to_string(),
            allowed_methods: Method::all(),
            service_name: None,
            obfuscate: self.obfuscate,
            retry_time: default_retry_time(),
            max_attempts: default_max_attempts(),
            http_timeout: self.http_timeout,
            default_region: region,
            allowed_countries: self.phone_number.allowed_countries,
            disallowed_countries: self.phone_number.disallowed_countries,
            carrier_lookup: self.phone_number.carrier_lookup,
            allowed_carrier_types: carrier_types,
            phones_command,
            phones_command_timeout: self.phones.command_timeout,
            allow_register: false,
            register_optional: false,
            allow_change: true,
            phones_file: self.phones.file,
            phones_directory: self.phones.directory,
            labels,
            event_log: self.event_log,
            state_dir: self.state_dir,
            max_attempts_timeout: default_max_attempts_timeout(),
            remember: 0,
            top_level: top_level.clone(),
            policies: Vec::new(),
        };
        // The top level over the defaults, then the blocks over that.
        top_level.apply(&mut cfg);
        if cfg.register_optional && !cfg.allow_register {
            return err("register_optional: only meaningful with allow_register = true".into());
        }
        cfg.policies = crate::policy::parse_blocks(policy, &cfg)?;
        Ok(cfg)
    }

    /// The top level's settings that `[[policy]]` blocks may also set.
    fn overrides(&self) -> crate::policy::Overrides {
        crate::policy::Overrides {
            allowed_methods: self.allowed_methods.clone(),
            max_attempts: self.max_attempts,
            max_attempts_timeout: self.max_attempts_timeout,
            retry_time: self.retry_time,
            remember: self.remember,
            allow_register: self.allow_register,
            register_optional: self.register_optional,
            allow_change: self.allow_change,
            service_name: self.service_name.clone(),
        }
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
        let credentials = format!(
            "{} ({})",
            self.account_sid.as_deref().unwrap_or("-"),
            if self.credentials.username.starts_with("SK") {
                format!("API key {}", self.credentials.username)
            } else {
                "auth token".into()
            }
        );
        let mut out = format!(
            "account_sid      {}\nservice_sid      {}\nverify_url       {}\nallowed_methods  {}\nmax_attempts     {} (lockout {} s)\nretry_time       {} s\nremember         {} s\nstate_dir        {}\nhttp_timeout     {} s\nobfuscate        {}\ndefault_region   {}\ncountries        {} (not {})\ncarrier_lookup   {} (allowed: {})\nphones.file      {}\nphones.directory {}\nphones.command   {}\nallow_register   {}\nallow_change     {}\n",
            credentials,
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
            self.phones_command.as_ref().map(|c| format!("{} (timeout {} s)", c.join(" "), self.phones_command_timeout)).unwrap_or_else(|| "-".into()),
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
        let loopback = [
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from(Ipv6Addr::LOCALHOST),
        ];
        for net in &self.trusted_networks {
            if loopback.iter().any(|ip| net.contains(*ip)) {
                notes.push(format!(
                    "trusted_networks: {net} holds a loopback address: anything relayed through this host (ssh -J, ssh -L, a local proxy) arrives from loopback and would skip the second factor; remove it"
                ));
            }
        }
        notes.extend(self.shadowing_notes());
        notes
    }

    /// Registration writes the directory, which the other sources are read
    /// around: say which number wins and how to go back. (A change at login
    /// only replaces a number already in the directory, so it shadows
    /// nothing new; allow_change, on by default, adds no note.)
    fn shadowing_notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        let Some(dir) = &self.phones_directory else {
            return notes;
        };
        if !self.allow_register {
            return notes;
        }
        let dir = dir.display();
        if self.phones_command.is_some() {
            notes.push(format!(
                "allow_register is on with a [phones] command: the directory {dir} is read before the command, so a number registered at login (when the command prints nothing and exits 0) is stored there and shadows the command's number for that user from then on; `twilio-2fa user remove USER` goes back to the command's number; turn allow_register off once the command has a number for everyone"
            ));
        }
        if self.phones_file.is_some() {
            notes.push(format!(
                "allow_register is on with a [phones] file: the file is read before the directory {dir}, so users it lists can neither register nor change; a number registered for a user it does not list stays in the directory and is used until that user is added to the file or `twilio-2fa user remove USER` is run"
            ));
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

/// A secret given inline (`key`) or in a file (`key_file`), not both.
fn secret_from(
    key: &str,
    inline: &Option<Secret>,
    file: &Option<PathBuf>,
) -> Result<Option<Secret>, ConfigError> {
    let value = match (inline, file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError(format!(
                "{key} and {key}_file: set only one of them"
            )))
        }
        (None, None) => return Ok(None),
        (Some(v), None) => v.clone(),
        (None, Some(path)) => Secret(read_secret_file(&format!("{key}_file"), path)?),
    };
    let text = value.expose();
    if text.is_empty() || text.chars().any(|c| c.is_control()) {
        return Err(ConfigError(format!(
            "{key}: must be a non-empty string without control characters"
        )));
    }
    Ok(Some(value))
}

fn read_secret_file(key: &str, path: &Path) -> Result<String, ConfigError> {
    let shown = path.display();
    let mut text = secure_file::read(path, Mode::Secret, MAX_SECRET_FILE)
        .map_err(|e| ConfigError(format!("{key} {shown}: {e}")))?;
    let value = text.trim().to_string();
    wipe(&mut text);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token = "tok-3f9a7c"
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
    fn registration_next_to_another_source_says_what_shadows_what() {
        let with = |extra: &str| {
            let c = Config::parse(&format!("{MINIMAL}{extra}")).unwrap();
            c.notes().join("\n")
        };
        let both = "[phones]\ndirectory = \"/d\"\ncommand = \"/bin/q %u\"\nfile = \"/f\"\n";
        let notes = with(&format!("allow_register = true\n{both}"));
        assert!(notes.contains("read before the command"), "{notes}");
        assert!(notes.contains("shadows the command's number"), "{notes}");
        assert!(
            notes.contains("the file is read before the directory /d"),
            "{notes}"
        );
        // Change alone (on by default) shadows nothing new.
        let notes = with(both);
        assert!(!notes.contains("shadow"), "{notes}");
        assert!(!with("allow_register = true\n[phones]\ndirectory = \"/d\"\n").contains("shadow"));
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
        assert!(!format!("{c:?}").contains("tok-3f9a7c"));
        assert!(!c.summary().contains("tok-3f9a7c"));
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
            ("[phones]\ncommand_timeout = 0", "phones.command_timeout"),
            ("[phones]\ncommand_timeout = 31", "phones.command_timeout"),
            ("[methods.sms]\nlabel = \"\"", "methods.sms.label"),
        ] {
            let e = Config::parse(&format!("{MINIMAL}{line}\n")).unwrap_err();
            assert!(e.0.contains(key), "{line}: {e}");
        }
        let e = Config::parse(&MINIMAL.replace("VA0123", "VX0123")).unwrap_err();
        assert!(e.0.contains("service_sid"));
    }

    const KEYED: &str = r#"
api_key_sid = "SK0123456789abcdef0123456789abcdef"
api_key_secret = "key-secret-77"
service_sid = "VA0123456789abcdef0123456789abcdef"
"#;

    #[test]
    fn api_key_or_auth_token_but_not_both() {
        let c = Config::parse(KEYED).unwrap();
        assert_eq!(c.credentials.username, "SK0123456789abcdef0123456789abcdef");
        assert_eq!(c.account_sid, None);
        assert!(!format!("{c:?}").contains("key-secret-77"));
        assert!(c.summary().contains("API key SK0123"));
        let both = format!(
            "{KEYED}auth_token = \"x\"\naccount_sid = \"AC0123456789abcdef0123456789abcdef\"\n"
        );
        assert!(Config::parse(&both).unwrap_err().0.contains("not both"));
        let bad = KEYED.replace("SK0123", "SX0123");
        assert!(Config::parse(&bad).unwrap_err().0.contains("api_key_sid"));
        let no_secret = KEYED.replace("api_key_secret = \"key-secret-77\"\n", "");
        assert!(Config::parse(&no_secret)
            .unwrap_err()
            .0
            .contains("api_key_secret"));
        let token_without_account =
            MINIMAL.replace("account_sid = \"AC0123456789abcdef0123456789abcdef\"\n", "");
        assert!(Config::parse(&token_without_account)
            .unwrap_err()
            .0
            .contains("account_sid"));
    }

    #[test]
    fn policy_keys_are_checked() {
        for (line, key) in [
            ("http_proxy = \"socks5://p:1080\"", "http_proxy"),
            ("http_proxy = \"http://\"", "http_proxy"),
            ("only_groups = [\"\"]", "only_groups"),
            ("exempt_groups = [\"a b\"]", "exempt_groups"),
            ("trusted_networks = [\"10.0.0.0/40\"]", "trusted_networks"),
            ("trusted_networks = [\"intranet\"]", "trusted_networks"),
        ] {
            let e = Config::parse(&format!("{MINIMAL}{line}\n")).unwrap_err();
            assert!(e.0.contains(key), "{line}: {e}");
        }
        let c = Config::parse(&format!(
            "{MINIMAL}http_proxy = \"http://proxy.example.com:3128\"\ntrusted_networks = [\"10.0.0.0/8\", \"::1/128\"]\n"
        ))
        .unwrap();
        assert_eq!(c.trusted_networks.len(), 2);
    }

    #[test]
    fn a_trusted_loopback_network_is_warned_about() {
        let warned = |nets: &str| {
            Config::parse(&format!("{MINIMAL}trusted_networks = [{nets}]\n"))
                .unwrap()
                .notes()
                .iter()
                .any(|n| n.contains("loopback"))
        };
        assert!(warned("\"10.0.0.0/8\", \"::1/128\""));
        assert!(warned("\"127.0.0.0/8\""));
        assert!(warned("\"0.0.0.0/0\""));
        assert!(!warned("\"10.0.0.0/8\", \"192.0.2.0/24\""));
    }

    #[test]
    fn secret_files_must_not_be_readable_by_others() {
        use std::os::unix::fs::PermissionsExt;
        // Not under /tmp: a directory others may write is refused outright.
        let lab = crate::lab::Lab::new("t2fa-unit-cfg").unwrap();
        let dir = lab.dir.clone();
        let token = dir.join("token");
        std::fs::write(&token, "tok-file-91\n").unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = format!(
            "account_sid = \"AC0123456789abcdef0123456789abcdef\"\nauth_token_file = \"{}\"\nservice_sid = \"VA0123456789abcdef0123456789abcdef\"\n",
            token.display()
        );
        let e = Config::parse(&text).unwrap_err();
        assert!(
            e.0.contains("readable by group or others") && e.0.contains("chmod 600"),
            "{e}"
        );
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            Config::parse(&text).unwrap().credentials.secret.expose(),
            "tok-file-91"
        );
        let cfg = dir.join("config.toml");
        std::fs::write(&cfg, &text).unwrap();
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(Config::load(&cfg)
            .unwrap_err()
            .0
            .contains("readable by group or others"));
    }
}
