//! The TOML configuration: parsing, defaults and validation.
//!
//! Every problem is reported as one line that names the key, so the module's
//! syslog line and `twilio-2fa check-config` say the same thing.
//!
//! This file holds the types, defaults, loading and the admin's summary;
//! `validate` turns the parsed TOML into a `Config`, one section at a time.

use crate::method::Method;
use crate::secure_file::{self, Mode};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};

mod validate;

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
    /// `event_format`: text (key=value) or JSON lines, for syslog and event_log.
    pub event_format: crate::events::Format,
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
    /// The language of every prompt and message (`language`).
    pub language: crate::i18n::Language,
    /// `locale`: Twilio's `Locale` when it differs from `language`'s;
    /// `Some("")` sends none.
    pub locale: Option<String>,
    /// `[messages]`: the admin's wording, checked.
    pub messages: crate::i18n::Overrides,
    /// The overridable keys the top level sets (the rest are defaults).
    pub top_level: crate::policy::Overrides,
    /// `[[policy]]` blocks, in file order; the first match wins.
    pub policies: Vec<crate::policy::Policy>,
    /// `[rate_limits]`: Twilio's Service Rate Limits every send names.
    pub rate_limits: Option<crate::rate_limits::RateLimits>,
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
    #[serde(default)]
    event_format: crate::events::Format,
    #[serde(default = "default_state_dir")]
    state_dir: PathBuf,
    max_attempts_timeout: Option<u64>,
    remember: Option<u64>,
    allow_register: Option<bool>,
    register_optional: Option<bool>,
    allow_change: Option<bool>,
    language: Option<crate::i18n::Language>,
    locale: Option<String>,
    /// Checked by `crate::i18n::Overrides`, which names the bad key.
    #[serde(default)]
    messages: toml::Table,
    #[serde(default)]
    phone_number: RawPhoneNumber,
    #[serde(default)]
    phones: RawPhones,
    #[serde(default)]
    methods: BTreeMap<Method, RawMethod>,
    /// Checked block by block so errors name the block: `crate::policy`.
    #[serde(default)]
    policy: Vec<toml::Value>,
    rate_limits: Option<crate::rate_limits::RawRateLimits>,
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

impl Config {
    /// The texts of a login under this config: its language, the admin's wording.
    pub fn texts(&self) -> crate::i18n::Texts<'_> {
        crate::i18n::Texts::new(self.language, &self.messages)
    }

    /// The `Locale` sent to Twilio: `locale`, else the language's; none for `""`.
    pub fn twilio_locale(&self) -> Option<String> {
        match self.locale.as_deref() {
            Some("") => None,
            Some(l) => Some(l.to_string()),
            None => Some(self.language.twilio_locale().to_string()),
        }
    }

    /// A method's name in the login's language: `[methods.<name>] label`
    /// (the admin's, in every language), else the catalog's.
    pub fn label_in(&self, m: Method, t: &crate::i18n::Texts) -> String {
        match self.labels.get(&m) {
            Some(l) => l.clone(),
            None => t.text(match m {
                Method::Sms => crate::i18n::Msg::MethodSms,
                Method::Call => crate::i18n::Msg::MethodCall,
                Method::Whatsapp => crate::i18n::Msg::MethodWhatsapp,
            }),
        }
    }

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
            "account_sid      {}\nservice_sid      {}\nverify_url       {}\nallowed_methods  {}\nmax_attempts     {} (lockout {} s)\nretry_time       {} s\nremember         {} s\nstate_dir        {}\nhttp_timeout     {} s\nobfuscate        {}\ndefault_region   {}\ncountries        {} (not {})\ncarrier_lookup   {} (allowed: {})\nphones.file      {}\nphones.directory {}\nphones.command   {}\nallow_register   {}\nallow_change     {}\nlanguage         {} (Locale sent to Twilio: {})\nmessages         {}\n",
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
            self.language,
            self.twilio_locale().unwrap_or_else(|| "none".into()),
            if self.messages == crate::i18n::Overrides::default() { "as shipped" } else { "some reworded ([messages])" },
        );
        out.push_str(&format!(
            "events           {} (syslog{})\n",
            self.event_format.name(),
            self.event_log
                .as_ref()
                .map(|p| format!(" and {}", p.display()))
                .unwrap_or_default()
        ));
        out.push_str(&format!(
            "rate_limits      {}\n",
            self.rate_limits_summary()
        ));
        for note in self.notes() {
            out.push_str(&format!("note: {note}\n"));
        }
        out
    }

    /// `[rate_limits]` in one line: each limit, its key and buckets.
    fn rate_limits_summary(&self) -> String {
        let Some(r) = &self.rate_limits else {
            return "- (none: only Twilio's own limits per number)".into();
        };
        r.limits
            .iter()
            .map(|l| {
                let buckets: Vec<String> = l
                    .buckets
                    .iter()
                    .map(|b| format!("{} per {} s", b.max, b.interval))
                    .collect();
                format!("{} (by {}: {})", l.name, l.key.name(), buckets.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Settings that are valid but deserve the admin's attention.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        match self.registration_where() {
            Some(on) if self.phones_directory.is_none() => notes.push(format!(
                "allow_register is on{on} but no [phones] directory is set, so registration is off: there is nowhere to store numbers"
            )),
            Some(on) => notes.push(format!(
                "allow_register is on{on}: anyone who knows the password of a user without a number can register their own phone as that user's second factor; meant for a rollout period"
            )),
            None => {}
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
    /// Where registration is on: `Some("")` at the top level,
    /// `Some(" in policy[N]")` when only a block turns it on, else `None`.
    fn registration_where(&self) -> Option<String> {
        if self.allow_register {
            return Some(String::new());
        }
        let i = self
            .policies
            .iter()
            .position(|p| p.overrides.allow_register == Some(true))?;
        Some(format!(" in policy[{}]", i + 1))
    }

    fn shadowing_notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        let Some(dir) = &self.phones_directory else {
            return notes;
        };
        let on = match self.registration_where() {
            Some(on) => on,
            None => return notes,
        };
        let dir = dir.display();
        if self.phones_command.is_some() {
            notes.push(format!(
                "allow_register is on{on} with a [phones] command: the directory {dir} is read before the command, so a number registered at login (when the command prints nothing and exits 0) is stored there and shadows the command's number for that user from then on; `twilio-2fa user remove USER` goes back to the command's number; turn allow_register off once the command has a number for everyone"
            ));
        }
        if self.phones_file.is_some() {
            notes.push(format!(
                "allow_register is on{on} with a [phones] file: the file is read before the directory {dir}, so users it lists can neither register nor change; a number registered for a user it does not list stays in the directory and is used until that user is added to the file or `twilio-2fa user remove USER` is run"
            ));
        }
        notes
    }
}

#[cfg(test)]
mod tests;
