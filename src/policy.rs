//! Per-user and per-group policy: `[[policy]]` blocks that override some
//! settings for the users and groups they name. The first block that matches
//! wins; the flow then runs on a copy of the config with its overrides.
//!
//! The top level is itself one layer of the same `Overrides` over the
//! built-in defaults, so both are checked by the same code and
//! `twilio-2fa policy USER` can say where each value came from.

use crate::config::{Config, ConfigError};
use crate::i18n::Language;
use crate::method::Method;
use crate::users::{Account, UserDb};
use serde::Deserialize;
use std::borrow::Cow;

/// The settings a policy block may change. `None`: not set at this layer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    pub allowed_methods: Option<Vec<Method>>,
    pub max_attempts: Option<u32>,
    pub max_attempts_timeout: Option<u64>,
    pub retry_time: Option<u64>,
    pub remember: Option<u64>,
    pub allow_register: Option<bool>,
    pub register_optional: Option<bool>,
    pub allow_change: Option<bool>,
    pub service_name: Option<String>,
    pub language: Option<Language>,
    /// Twilio's `Locale`; `""` sends none (Twilio picks by country code).
    pub locale: Option<String>,
}

/// One checked `[[policy]]` block.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Account names (`pw_name`), compared exactly.
    pub users: Vec<String>,
    /// Group names, compared by group id like `only_groups`.
    pub groups: Vec<String>,
    pub overrides: Overrides,
}

/// Thirty days, the longest lockout or remembered login.
const MAX_PERIOD: u64 = 30 * 86400;

impl Overrides {
    /// The checks every layer passes; `at` prefixes each key ("" at the
    /// top level, "policy[2]." in a block).
    pub fn check(&self, at: &str) -> Result<(), ConfigError> {
        let err = |s: String| Err(ConfigError(s));
        if let Some(methods) = &self.allowed_methods {
            if methods.is_empty() {
                return err(format!(
                    "{at}allowed_methods: must name at least one of sms, call, whatsapp"
                ));
            }
            for (i, m) in methods.iter().enumerate() {
                if methods[..i].contains(m) {
                    return err(format!("{at}allowed_methods: {} is listed twice", m.name()));
                }
            }
        }
        if let Some(name) = &self.service_name {
            if name.chars().count() > 30 || name.chars().any(|c| c.is_control()) {
                return err(format!(
                    "{at}service_name: at most 30 characters, no control characters"
                ));
            }
        }
        if let Some(locale) = &self.locale {
            if !is_locale(locale) {
                return err(format!(
                    "{at}locale: {:?} is not a Twilio locale such as \"de\" or \"pt-BR\" (or \"\" to send none)",
                    locale
                ));
            }
        }
        if self.max_attempts.is_some_and(|n| !(1..=20).contains(&n)) {
            return err(format!("{at}max_attempts: must be between 1 and 20"));
        }
        if self.retry_time.is_some_and(|t| t > 3600) {
            return err(format!(
                "{at}retry_time: must be between 0 and 3600 seconds"
            ));
        }
        for (key, v) in [
            ("max_attempts_timeout", self.max_attempts_timeout),
            ("remember", self.remember),
        ] {
            if v.is_some_and(|v| v > MAX_PERIOD) {
                return err(format!(
                    "{at}{key}: must be between 0 and {MAX_PERIOD} seconds (30 days)"
                ));
            }
        }
        Ok(())
    }

    /// `cfg` with every setting of this layer applied.
    pub fn apply(&self, cfg: &mut Config) {
        let o = self.clone();
        if let Some(v) = o.allowed_methods {
            cfg.allowed_methods = v;
        }
        if let Some(v) = o.service_name {
            cfg.service_name = Some(v);
        }
        if let Some(v) = o.locale {
            cfg.locale = Some(v);
        }
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = o.$f { cfg.$f = v; } )* };
        }
        set!(
            max_attempts,
            max_attempts_timeout,
            retry_time,
            remember,
            allow_register,
            register_optional,
            allow_change,
            language
        );
    }

    /// The keys this layer sets, in the order `twilio-2fa policy` prints them.
    pub fn keys_set(&self) -> Vec<&'static str> {
        let o = self;
        [
            ("allowed_methods", o.allowed_methods.is_some()),
            ("max_attempts", o.max_attempts.is_some()),
            ("max_attempts_timeout", o.max_attempts_timeout.is_some()),
            ("retry_time", o.retry_time.is_some()),
            ("remember", o.remember.is_some()),
            ("allow_register", o.allow_register.is_some()),
            ("register_optional", o.register_optional.is_some()),
            ("allow_change", o.allow_change.is_some()),
            ("service_name", o.service_name.is_some()),
            ("language", o.language.is_some()),
            ("locale", o.locale.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(k, _)| k)
        .collect()
    }
}

/// Every key a block may override, in print order.
pub const KEYS: [&str; 11] = [
    "allowed_methods",
    "max_attempts",
    "max_attempts_timeout",
    "retry_time",
    "remember",
    "allow_register",
    "register_optional",
    "allow_change",
    "service_name",
    "language",
    "locale",
];

/// A BCP 47 tag as Twilio writes locales ("de", "pt-BR", "zh-HK"), or "".
fn is_locale(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    let mut parts = s.split('-');
    let lang = parts.next().unwrap_or_default();
    let region = parts.next();
    (2..=3).contains(&lang.len())
        && lang.bytes().all(|b| b.is_ascii_lowercase())
        && match region {
            None => true,
            Some(r) => (2..=8).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_alphanumeric()),
        }
        && parts.next().is_none()
}

/// One block as written: who it is for, and what it changes (any other
/// key is an error from `Overrides`' `deny_unknown_fields`).
fn parse_block(value: toml::Value) -> Result<Policy, toml::de::Error> {
    use serde::de::Error;
    let toml::Value::Table(mut table) = value else {
        return Err(toml::de::Error::custom("must be a table"));
    };
    let mut names = |key: &str| -> Result<Vec<String>, toml::de::Error> {
        match table.remove(key) {
            None => Ok(Vec::new()),
            Some(v) => v.try_into().map_err(|e: toml::de::Error| {
                toml::de::Error::custom(format!("{key}: {}", e.message()))
            }),
        }
    };
    let (users, groups) = (names("users")?, names("groups")?);
    let overrides = toml::Value::Table(table.clone())
        .try_into()
        .map_err(|e: toml::de::Error| name_the_key(&table, e))?;
    Ok(Policy {
        users,
        groups,
        overrides,
    })
}

/// serde's message for a bad value names the value, not the key ("invalid
/// type: string \"x\", expected u32"): find the key it came from.
fn name_the_key(table: &toml::Table, e: toml::de::Error) -> toml::de::Error {
    use serde::de::Error;
    if e.message().contains("unknown field") {
        return e;
    }
    let bad = table.iter().find(|(k, v)| {
        let one = toml::Table::from_iter([((*k).clone(), (*v).clone())]);
        toml::Value::Table(one).try_into::<Overrides>().is_err()
    });
    match bad {
        Some((key, _)) => toml::de::Error::custom(format!("{key}: {}", e.message())),
        None => e,
    }
}

/// Checks the `[[policy]]` blocks against the checked top level `base`.
/// Blocks are numbered from 1 in file order in every message.
pub fn parse_blocks(raw: Vec<toml::Value>, base: &Config) -> Result<Vec<Policy>, ConfigError> {
    let mut out = Vec::new();
    for (i, value) in raw.into_iter().enumerate() {
        let at = format!("policy[{}]", i + 1);
        let block = parse_block(value).map_err(|e| {
            let msg = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
            // "users: ..." names its key: "policy[1].users: ...", as below.
            let keyed = ["users", "groups"]
                .iter()
                .chain(KEYS.iter())
                .any(|k| msg.starts_with(&format!("{k}: ")));
            ConfigError(format!("{at}{}{msg}", if keyed { "." } else { ": " }))
        })?;
        if block.users.is_empty() && block.groups.is_empty() {
            return Err(ConfigError(format!(
                "{at}: names neither users nor groups, so it would match nobody"
            )));
        }
        for (key, names) in [("users", &block.users), ("groups", &block.groups)] {
            if names
                .iter()
                .any(|n| n.is_empty() || n.chars().any(|c| c.is_control() || c.is_whitespace()))
            {
                return Err(ConfigError(format!(
                    "{at}.{key}: names must be non-empty, without spaces or control characters"
                )));
            }
        }
        block.overrides.check(&format!("{at}."))?;
        // A rule across keys holds for the settings the user ends up with.
        let mut effective = base.clone();
        block.overrides.apply(&mut effective);
        if effective.register_optional && !effective.allow_register {
            return Err(ConfigError(format!(
                "{at}.register_optional: only meaningful with allow_register = true"
            )));
        }
        out.push(Policy {
            users: block.users,
            groups: block.groups,
            overrides: block.overrides,
        });
    }
    Ok(out)
}

/// The block (index from 0) that applies to `account`, if any.
///
/// Fail closed: blocks are tried in order; a block that names the user, or
/// a group whose id is among the user's, matches. When a block cannot be
/// decided (the user's groups or one of its group names cannot be looked
/// up, or a group name does not exist) before the first certain match, the
/// answer is an `Err`: the block might apply or not, and either could be
/// the more lenient choice, so the caller denies the login.
pub fn matching_block(
    policies: &[Policy],
    account: &Account,
    users: &dyn UserDb,
) -> Result<Option<usize>, String> {
    let mut mine: Option<Vec<u32>> = None;
    for (i, p) in policies.iter().enumerate() {
        if p.users.contains(&account.name) {
            return Ok(Some(i));
        }
        if p.groups.is_empty() {
            continue;
        }
        let at = format!("policy[{}]", i + 1);
        if mine.is_none() {
            mine = Some(
                users
                    .group_ids(account)
                    .map_err(|e| format!("{at}: the user's groups: {e}"))?,
            );
        }
        let gids = mine.as_deref().unwrap_or_default();
        let mut undecided = None;
        for name in &p.groups {
            match users.group_id(name) {
                Ok(Some(gid)) if gids.contains(&gid) => return Ok(Some(i)),
                Ok(Some(_)) => {}
                Ok(None) => undecided = Some(format!("{at}: group {name}: no such group")),
                Err(e) => undecided = Some(format!("{at}: group {name}: {e}")),
            }
        }
        if let Some(why) = undecided {
            return Err(why);
        }
    }
    Ok(None)
}

/// The config `account` logs in with, and the block (from 0) that set it.
pub fn effective<'c>(
    cfg: &'c Config,
    account: &Account,
    users: &dyn UserDb,
) -> Result<(Cow<'c, Config>, Option<usize>), String> {
    let block = matching_block(&cfg.policies, account, users)?;
    // Copied only when a block changes something (the copy holds the
    // credentials too).
    let out = match block {
        Some(i) => {
            let mut out = cfg.clone();
            cfg.policies[i].overrides.apply(&mut out);
            Cow::Owned(out)
        }
        None => Cow::Borrowed(cfg),
    };
    Ok((out, block))
}

/// Where an effective setting came from, for `twilio-2fa policy`.
pub fn source_of(cfg: &Config, block: Option<usize>, key: &str) -> String {
    let set_in_block = |k| block.is_some_and(|i| cfg.policies[i].overrides.keys_set().contains(&k));
    // An unset locale follows the language: it comes from where that did.
    if key == "locale" && !set_in_block("locale") && !cfg.top_level.keys_set().contains(&"locale") {
        return source_of(cfg, block, "language");
    }
    if let Some(i) = block {
        if cfg.policies[i].overrides.keys_set().contains(&key) {
            return format!("policy[{}]", i + 1);
        }
    }
    if cfg.top_level.keys_set().contains(&key) {
        "top level".into()
    } else {
        "default".into()
    }
}

/// The effective value of `key` in `cfg`, as the config file would write it.
pub fn value_of(cfg: &Config, key: &str) -> String {
    match key {
        "allowed_methods" => {
            let names: Vec<String> = cfg
                .allowed_methods
                .iter()
                .map(|m| format!("\"{}\"", m.name()))
                .collect();
            format!("[{}]", names.join(", "))
        }
        "max_attempts" => cfg.max_attempts.to_string(),
        "max_attempts_timeout" => cfg.max_attempts_timeout.to_string(),
        "retry_time" => cfg.retry_time.to_string(),
        "remember" => cfg.remember.to_string(),
        "allow_register" => cfg.allow_register.to_string(),
        "register_optional" => cfg.register_optional.to_string(),
        "allow_change" => cfg.allow_change.to_string(),
        "service_name" => match &cfg.service_name {
            Some(n) => format!("{n:?}"),
            None => "(Twilio service's name)".into(),
        },
        "language" => format!("\"{}\"", cfg.language.code()),
        "locale" => match cfg.twilio_locale() {
            Some(l) if cfg.locale.is_none() => format!("\"{l}\"  (from language)"),
            Some(l) => format!("\"{l}\""),
            None => "\"\"  (none sent: Twilio picks by country code)".into(),
        },
        _ => String::new(),
    }
}
