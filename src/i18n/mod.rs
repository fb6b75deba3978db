//! Languages: every text a user sees comes from a message catalog, by id.
//!
//! The catalogs are gettext `.po` files under `po/`, turned into static
//! tables by build.rs, so a login neither opens nor parses one. English
//! is the template's msgids; a missing or empty translation falls back to it.
//! Admins may override any text (`[messages]` in the config), per language.

mod catalog;
#[cfg(test)]
mod po;

pub use catalog::{Kind, Msg};

use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

/// The languages the module ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub enum Language {
    #[default]
    En,
    De,
    Es,
    Fr,
    PtBr,
}

impl Language {
    pub const ALL: [Language; 5] = [
        Language::En,
        Language::De,
        Language::Es,
        Language::Fr,
        Language::PtBr,
    ];

    /// The code used in the config (`language = "pt_BR"`) and in `po/`.
    pub fn code(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::De => "de",
            Language::Es => "es",
            Language::Fr => "fr",
            Language::PtBr => "pt_BR",
        }
    }

    /// Accepts the config spelling and its common variants (`pt-BR`, `PT_br`).
    pub fn parse(s: &str) -> Option<Language> {
        let norm = s.replace('-', "_").to_ascii_lowercase();
        Language::ALL
            .into_iter()
            .find(|l| l.code().to_ascii_lowercase() == norm)
    }

    /// Twilio Verify's `Locale` for this language.
    pub fn twilio_locale(self) -> &'static str {
        match self {
            Language::PtBr => "pt-BR",
            other => other.code(),
        }
    }

    /// The header each catalog must carry: the plural rule below is this one.
    #[cfg(test)]
    fn plural_forms(self) -> &'static str {
        match self {
            Language::En | Language::De | Language::Es => "nplurals=2; plural=(n != 1);",
            Language::Fr | Language::PtBr => "nplurals=2; plural=(n > 1);",
        }
    }

    pub fn nplurals(self) -> usize {
        2
    }

    /// Which plural form `n` takes (French and Portuguese count 0 as singular).
    fn plural_index(self, n: u64) -> usize {
        match self {
            Language::En | Language::De | Language::Es => usize::from(n != 1),
            Language::Fr | Language::PtBr => usize::from(n > 1),
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Language {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Language::parse_or_explain(&s).map_err(serde::de::Error::custom)
    }
}

impl Language {
    /// `parse`, with an error that lists the shipped languages.
    pub fn parse_or_explain(s: &str) -> Result<Language, String> {
        Language::parse(s).ok_or_else(|| {
            format!(
                "\"{}\" is not a language this module ships; use one of {}",
                s.escape_debug(),
                Language::ALL.map(Language::code).join(", ")
            )
        })
    }
}

/// A text's forms as the admin wrote them: one, or one per plural form.
type Forms = Vec<String>;

/// Where a shipped text is in `shipped::TEXT`: byte offsets (start, end).
type Span = (u32, u32);
/// A shipped catalog's entry: the index of its id's span in
/// `shipped::SPANS` and how many forms it has; the forms' spans follow the
/// id's there.
type Entry = (u16, u8);

/// The catalogs, turned into offsets into one string by build.rs.
mod shipped {
    use super::{Entry, Span};
    include!(concat!(env!("OUT_DIR"), "/catalogs.rs"));

    pub(super) fn text(span: Span) -> &'static str {
        TEXT.get(span.0 as usize..span.1 as usize)
            .unwrap_or_default()
    }
}

/// One language's shipped texts, sorted by id.
#[derive(Debug, Clone, Copy)]
struct Catalog(&'static [Entry]);

impl Catalog {
    fn of(lang: Language) -> Catalog {
        Catalog(match lang {
            Language::En => &shipped::EN,
            Language::De => &shipped::DE,
            Language::Es => &shipped::ES,
            Language::Fr => &shipped::FR,
            Language::PtBr => &shipped::PT_BR,
        })
    }

    fn id(entry: &Entry) -> &'static str {
        shipped::text(shipped::SPANS[entry.0 as usize])
    }

    /// The forms of `msg`; None where the catalog has no (complete,
    /// non-fuzzy) entry for it.
    fn get(self, msg: Msg) -> Option<&'static [Span]> {
        let id = msg.id();
        let i = self.0.binary_search_by(|e| Catalog::id(e).cmp(id)).ok()?;
        let (id, count) = self.0[i];
        let first = id as usize + 1;
        shipped::SPANS.get(first..first + count as usize)
    }
}

/// The admin's `[messages]`: texts for every language, and per language.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    all: HashMap<Msg, Forms>,
    by_language: HashMap<Language, HashMap<Msg, Forms>>,
}

impl Overrides {
    /// Checks the `[messages]` table. Top-level keys are message ids and
    /// apply to every language; a table named for a language (`[messages.de]`)
    /// holds that language's own, which win.
    pub fn from_table(table: &toml::Table) -> Result<Overrides, String> {
        let mut out = Overrides::default();
        for (key, value) in table {
            if let (Some(lang), toml::Value::Table(t)) = (Language::parse(key), value) {
                let mut texts = HashMap::new();
                for (id, v) in t {
                    let at = format!("messages.{key}.{id}");
                    let (msg, forms) = override_text(&at, id, v, &[lang])?;
                    texts.insert(msg, forms);
                }
                out.by_language.insert(lang, texts);
                continue;
            }
            let at = format!("messages.{key}");
            let (msg, forms) = override_text(&at, key, value, &Language::ALL)?;
            out.all.insert(msg, forms);
        }
        Ok(out)
    }

    fn get(&self, lang: Language, msg: Msg) -> Option<&Forms> {
        self.by_language
            .get(&lang)
            .and_then(|t| t.get(&msg))
            .or_else(|| self.all.get(&msg))
    }

    /// The ids overridden for `lang`, for `twilio-2fa messages`.
    pub fn is_overridden(&self, lang: Language, msg: Msg) -> bool {
        self.get(lang, msg).is_some()
    }
}

/// One override: a known, overridable id; a string, or for a plural
/// message one string per plural form; every placeholder, no other, no
/// control characters.
fn override_text(
    at: &str,
    id: &str,
    value: &toml::Value,
    langs: &[Language],
) -> Result<(Msg, Forms), String> {
    let msg = Msg::from_id(id).ok_or_else(|| {
        let lang_hint = if value.is_table() {
            format!(
                "; a language table must be one of {}",
                Language::ALL.map(Language::code).join(", ")
            )
        } else {
            String::new()
        };
        format!(
            "{at}: there is no message with this id (`twilio-2fa messages` lists them){lang_hint}"
        )
    })?;
    if msg.kind() == Kind::Answer {
        return Err(format!(
            "{at}: the words users type cannot be overridden (scripts and prompts depend on them)"
        ));
    }
    let forms: Forms = match value {
        toml::Value::String(s) => vec![s.clone()],
        toml::Value::Array(items) if msg.kind() == Kind::Plural => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("{at}: every plural form must be a string"))?,
        _ if msg.kind() == Kind::Plural => {
            return Err(format!(
                "{at}: must be a string, or a list of one string per plural form"
            ))
        }
        _ => return Err(format!("{at}: must be a string")),
    };
    if value.is_array() {
        if let Some(l) = langs.iter().find(|l| l.nplurals() != forms.len()) {
            return Err(format!(
                "{at}: {} has {} plural forms, not {}",
                l.code(),
                l.nplurals(),
                forms.len()
            ));
        }
    }
    for text in &forms {
        check_text(at, msg, text)?;
    }
    Ok((msg, forms))
}

/// Placeholders exactly as the message has them; no control characters
/// (a newline or escape sequence would let a text forge the terminal).
fn check_text(at: &str, msg: Msg, text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err(format!("{at}: must not be empty"));
    }
    if text.len() > 1024 {
        return Err(format!("{at}: longer than 1024 bytes"));
    }
    if let Some(c) = text.chars().find(|&c| c.is_control() || is_bidi_control(c)) {
        return Err(format!(
            "{at}: contains the control character {:?}; write it on one line, without escapes",
            c
        ));
    }
    let used = placeholders(text).map_err(|why| format!("{at}: {why}"))?;
    let expected = msg.placeholders();
    if let Some(p) = used.iter().find(|p| !expected.contains(p)) {
        return Err(format!(
            "{at}: unknown placeholder {{{p}}}; this message has {}",
            describe(expected)
        ));
    }
    if let Some(p) = expected.iter().find(|p| !used.contains(p)) {
        return Err(format!("{at}: must contain the placeholder {{{p}}}"));
    }
    Ok(())
}

/// Bidirectional embeddings, overrides and isolates reorder what follows
/// them on the terminal (text that reads differently from what it is);
/// the marks U+200E/U+200F, which only set a direction, stay allowed.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn describe(placeholders: &[&str]) -> String {
    if placeholders.is_empty() {
        return "none".into();
    }
    placeholders
        .iter()
        .map(|p| format!("{{{p}}}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `{name}` placeholders of a text; a `{` or `}` that is not part of
/// one is an error.
fn placeholders(text: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(['{', '}']) {
        if rest[i..].starts_with('}') {
            return Err("a } without its {".into());
        }
        let after = &rest[i + 1..];
        let end = after
            .find('}')
            .ok_or_else(|| "a { without its }".to_string())?;
        let name = &after[..end];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return Err(format!("{{{name}}} is not a placeholder name"));
        }
        out.push(name);
        rest = &after[end + 1..];
    }
    Ok(out)
}

/// Fills `{name}` placeholders; a name without a value stays as it is.
fn fill(text: &str, args: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    let mut rest = text;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match after.find('}').map(|end| (&after[..end], end)) {
            Some((name, end)) if args.iter().any(|(n, _)| *n == name) => {
                let value = args.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
                out.push_str(value.unwrap_or_default());
                rest = &after[end + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// What a user may type at a prompt besides a code or number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    NewCode,
    OtherMethod,
    Change,
    Skip,
}

impl Answer {
    /// The one-letter key and the word for it.
    fn words(self) -> &'static [Msg] {
        match self {
            Answer::NewCode => &[Msg::KeyNewCode, Msg::WordNewCode],
            Answer::OtherMethod => &[Msg::KeyOtherMethod, Msg::WordOtherMethod],
            Answer::Change => &[Msg::KeyChange, Msg::WordChange],
            Answer::Skip => &[Msg::WordSkip],
        }
    }
}

/// A message's forms: the admin's override, or the shipped text.
#[derive(Debug, Clone, Copy)]
enum FormsRef<'a> {
    Admin(&'a [String]),
    Shipped(&'static [Span]),
}

impl<'a> FormsRef<'a> {
    fn len(self) -> usize {
        match self {
            FormsRef::Admin(f) => f.len(),
            FormsRef::Shipped(f) => f.len(),
        }
    }

    fn get(self, i: usize) -> Option<&'a str> {
        match self {
            FormsRef::Admin(f) => f.get(i).map(String::as_str),
            FormsRef::Shipped(f) => f.get(i).map(|s| shipped::text(*s)),
        }
    }
}

/// The texts of one login: its language and the admin's overrides.
#[derive(Debug, Clone, Copy)]
pub struct Texts<'a> {
    pub language: Language,
    overrides: &'a Overrides,
}

static NO_OVERRIDES: OnceLock<Overrides> = OnceLock::new();

impl<'a> Texts<'a> {
    pub fn new(language: Language, overrides: &'a Overrides) -> Texts<'a> {
        Texts {
            language,
            overrides,
        }
    }

    /// A language's texts as shipped, without the admin's overrides.
    pub fn shipped(language: Language) -> Texts<'static> {
        Texts::new(language, NO_OVERRIDES.get_or_init(Overrides::default))
    }

    /// The shipped English texts, for where no config could be read.
    pub fn english() -> Texts<'static> {
        Texts::shipped(Language::En)
    }

    fn forms(&self, msg: Msg) -> FormsRef<'a> {
        if let Some(f) = self.overrides.get(self.language, msg) {
            return FormsRef::Admin(f);
        }
        let shipped = Catalog::of(self.language)
            .get(msg)
            .or_else(|| Catalog::of(Language::En).get(msg));
        FormsRef::Shipped(shipped.unwrap_or(&[]))
    }

    /// A message's texts as written, placeholders unfilled (one per
    /// plural form), for `twilio-2fa messages`.
    pub fn raw(&self, msg: Msg) -> Vec<&'a str> {
        let forms = self.forms(msg);
        (0..forms.len()).filter_map(|i| forms.get(i)).collect()
    }

    /// A message without placeholders.
    pub fn text(&self, msg: Msg) -> String {
        self.forms(msg).get(0).unwrap_or_default().to_string()
    }

    /// A message with its placeholders filled.
    pub fn fmt(&self, msg: Msg, args: &[(&str, &str)]) -> String {
        fill(&self.text(msg), args)
    }

    /// A plural message: the form for `n`; `{name}` of `count_name` is `n`.
    pub fn count(&self, msg: Msg, count_name: &str, n: u64) -> String {
        let forms = self.forms(msg);
        let i = if forms.len() > 1 {
            self.language.plural_index(n).min(forms.len() - 1)
        } else {
            0
        };
        let text = forms.get(i).unwrap_or_default();
        fill(text, &[(count_name, &n.to_string())])
    }

    /// Whether `typed` means `answer`, in this language or in English.
    /// Compared in place: `typed` may be a code, and no copy of it is made.
    pub fn means(&self, typed: &str, answer: Answer) -> bool {
        let typed = typed.trim();
        answer.words().iter().any(|w| {
            [self.language, Language::En]
                .into_iter()
                .filter_map(|l| Catalog::of(l).get(*w)?.first().map(|s| shipped::text(*s)))
                .any(|word| word.eq_ignore_ascii_case(typed))
        })
    }

    /// The key shown for `answer` in prompts (`r`, or its translation).
    pub fn key(&self, answer: Answer) -> String {
        self.text(answer.words()[0])
    }
}

#[cfg(test)]
mod tests;
