//! From the parsed TOML to a checked `Config`, one config section at a
//! time; every error is one line that names the key.

use super::{
    default_max_attempts, default_max_attempts_timeout, default_retry_time, wipe, Config,
    ConfigError, Credentials, RawConfig, Secret, LINE_TYPES, MAX_SECRET_FILE,
};
use crate::method::Method;
use crate::secure_file::{self, Mode};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

impl RawConfig {
    /// Checks every section, then builds the `Config`.
    pub(super) fn validate(mut self) -> Result<Config, ConfigError> {
        let credentials = self.check_twilio()?;
        // The keys a `[[policy]]` block may also set, checked the same way.
        let top_level = self.overrides();
        top_level.check("")?;
        self.check_paths()?;
        let trusted_networks = self.check_access()?;
        let phones_command = self.check_phones()?;
        let carrier_types = self.check_phone_number()?;
        let labels = self.check_methods()?;
        let messages = crate::i18n::Overrides::from_table(&self.messages).map_err(ConfigError)?;
        let policy = std::mem::take(&mut self.policy);
        let rate_limits = match self.rate_limits.take() {
            Some(raw) => Some(raw.check(read_secret_file)?),
            None => None,
        };
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
            default_region: self.phone_number.default_region,
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
            event_format: self.event_format,
            state_dir: self.state_dir,
            max_attempts_timeout: default_max_attempts_timeout(),
            remember: 0,
            language: crate::i18n::Language::En,
            locale: None,
            messages,
            top_level: top_level.clone(),
            policies: Vec::new(),
            rate_limits,
        };
        // The top level over the defaults, then the blocks over that.
        top_level.apply(&mut cfg);
        if cfg.register_optional && !cfg.allow_register {
            return Err(ConfigError(
                "register_optional: only meaningful with allow_register = true".into(),
            ));
        }
        cfg.policies = crate::policy::parse_blocks(policy, &cfg)?;
        Ok(cfg)
    }

    /// Who we are to Twilio and how it is reached: the SIDs, credentials,
    /// URLs, `http_timeout`, `ca_file` and `http_proxy`.
    fn check_twilio(&self) -> Result<Credentials, ConfigError> {
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
        if !(1..=120).contains(&self.http_timeout) {
            return err("http_timeout: must be between 1 and 120 seconds".into());
        }
        if self.ca_file.as_ref().is_some_and(|p| !p.is_absolute()) {
            return err("ca_file: must be an absolute path".into());
        }
        if let Some(p) = &self.http_proxy {
            let host = p.strip_prefix("http://").map(host_of).unwrap_or("");
            if host.is_empty() || p.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return err("http_proxy: must be an http:// URL, e.g. \"http://proxy.example.com:3128\" (HTTPS to Twilio is tunnelled through it)".into());
            }
        }
        Ok(credentials)
    }

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

    /// Where the module keeps its own files: `state_dir`, `event_log`.
    fn check_paths(&self) -> Result<(), ConfigError> {
        let err = |s: &str| Err(ConfigError(s.into()));
        if !self.state_dir.is_absolute() {
            return err("state_dir: must be an absolute path");
        }
        if let Some(p) = &self.event_log {
            if !p.is_absolute() {
                return err("event_log: must be an absolute path");
            }
        }
        Ok(())
    }

    /// Who may skip the second factor: `only_groups`, `exempt_groups`,
    /// `trusted_networks` (returned parsed).
    fn check_access(&self) -> Result<Vec<crate::net::Cidr>, ConfigError> {
        for (key, groups) in [
            ("only_groups", &self.only_groups),
            ("exempt_groups", &self.exempt_groups),
        ] {
            if groups
                .iter()
                .any(|g| g.is_empty() || g.chars().any(|c| c.is_control() || c.is_whitespace()))
            {
                return Err(ConfigError(format!(
                    "{key}: group names must be non-empty, without spaces or control characters"
                )));
            }
        }
        self.trusted_networks
            .iter()
            .map(|n| crate::net::Cidr::parse(n))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError(format!("trusted_networks: {e}")))
    }

    /// `[phones]`: where numbers come from. Returns the command split into
    /// program and arguments.
    fn check_phones(&self) -> Result<Option<Vec<String>>, ConfigError> {
        let err = |s: String| Err(ConfigError(s));
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
        Ok(phones_command)
    }

    /// `[phone_number]`: which numbers are accepted. Returns the allowed
    /// carrier types with "voip" expanded.
    fn check_phone_number(&self) -> Result<Vec<String>, ConfigError> {
        let err = |s: String| Err(ConfigError(s));
        let pn = &self.phone_number;
        let region = &pn.default_region;
        if !region.is_empty() && crate::phone::region_id(region).is_none() {
            return err(format!(
                "phone_number.default_region: \"{region}\" is not an ISO country code (e.g. \"US\"), or \"\" to require numbers starting with +"
            ));
        }
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
        Ok(carrier_types)
    }

    /// `[methods.<name>] label`: what the user is shown for each method.
    fn check_methods(&self) -> Result<BTreeMap<Method, String>, ConfigError> {
        let mut labels = BTreeMap::new();
        for (m, raw) in &self.methods {
            let label = raw.label.trim().to_string();
            if label.is_empty()
                || label.chars().count() > 40
                || label.chars().any(|c| c.is_control())
            {
                return Err(ConfigError(format!(
                    "methods.{}.label: 1 to 40 characters, no control characters",
                    m.name()
                )));
            }
            labels.insert(*m, label);
        }
        Ok(labels)
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
            language: self.language,
            locale: self.locale.clone(),
        }
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
