//! Which numbers may receive codes. Every number, from every source, must
//! parse and belong to an allowed country (checked from the number itself).
//! A number being registered, changed or set by an admin must also have an
//! allowed line type per Twilio Lookup; lookups never run on plain logins.

use crate::config::Config;
use crate::i18n::{Msg, Texts};
use crate::phone::{ParseError, PhoneNumber};
use crate::verify::ApiError;

/// What Twilio Lookup v2 says about a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineInfo {
    pub valid: bool,
    /// `line_type_intelligence.type`, e.g. "mobile", "landline".
    pub line_type: Option<String>,
}

pub trait LineTypeLookup {
    fn line_info(&self, e164: &str) -> Result<LineInfo, ApiError>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    NotANumber,
    NeedsCountryCode,
    /// The number's ISO region, if it has one.
    Country(Option<String>),
    LineType(Option<String>),
    /// The lookup could not be made: fail closed.
    LookupUnavailable(String),
}

impl Rejection {
    /// What the admin at the CLI is told (English).
    pub fn message(&self) -> String {
        self.text(&Texts::english())
    }

    /// What the user is told, in the login's language.
    pub fn text(&self, t: &Texts) -> String {
        match self {
            Rejection::NotANumber => t.text(Msg::NumberNotANumber),
            Rejection::NeedsCountryCode => t.text(Msg::NumberNeedsCountryCode),
            Rejection::Country(Some(c)) => t.fmt(Msg::NumberCountryNamed, &[("country", c)]),
            Rejection::Country(None) => t.text(Msg::NumberCountry),
            Rejection::LineType(Some(lt)) if lt != "unknown" => {
                let name = line_type_name(lt, t);
                t.fmt(Msg::NumberLineType, &[("line_type", &name)])
            }
            Rejection::LineType(_) => t.text(Msg::NumberLineTypeUnknown),
            Rejection::LookupUnavailable(_) => t.text(Msg::NumberLookupUnavailable),
        }
    }
}

/// Twilio Lookup's line types by name; an unlisted one is shown as Twilio
/// sent it, cut to letters and digits (it is untrusted input).
fn line_type_name(lt: &str, t: &Texts) -> String {
    let msg = match lt {
        "landline" => Msg::LineTypeLandline,
        "fixedVoip" => Msg::LineTypeFixedVoip,
        "nonFixedVoip" => Msg::LineTypeVoip,
        "tollFree" => Msg::LineTypeTollFree,
        "premium" => Msg::LineTypePremium,
        "sharedCost" => Msg::LineTypeSharedCost,
        "uan" => Msg::LineTypeUan,
        "voicemail" => Msg::LineTypeVoicemail,
        "pager" => Msg::LineTypePager,
        "personal" => Msg::LineTypePersonal,
        "mobile" => Msg::LineTypeMobile,
        other => {
            return other
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .take(20)
                .collect()
        }
    };
    t.text(msg)
}

/// Parse and country checks: for every number, including stored ones.
pub fn check_number(raw: &str, cfg: &Config) -> Result<PhoneNumber, Rejection> {
    let n = PhoneNumber::parse(raw, &cfg.default_region).map_err(|e| match e {
        ParseError::Invalid => Rejection::NotANumber,
        ParseError::NeedsCountryCode => Rejection::NeedsCountryCode,
    })?;
    check_country(n, cfg)
}

/// The country policy alone, for a number already parsed (e.g. from the cache).
pub fn check_country(n: PhoneNumber, cfg: &Config) -> Result<PhoneNumber, Rejection> {
    let region = n.region().map(str::to_string);
    let allowed = region.as_ref().is_some_and(|r| {
        cfg.allowed_countries.contains(r) && !cfg.disallowed_countries.contains(r)
    });
    if !allowed {
        return Err(Rejection::Country(region));
    }
    Ok(n)
}

/// `check_number` plus, with `carrier_lookup`, the line type: for numbers
/// being registered, changed or set by an admin.
pub fn check_new_number(
    raw: &str,
    cfg: &Config,
    lookup: &dyn LineTypeLookup,
    use_lookup: bool,
) -> Result<PhoneNumber, Rejection> {
    let n = check_number(raw, cfg)?;
    if !(cfg.carrier_lookup && use_lookup) {
        return Ok(n);
    }
    let info = lookup
        .line_info(n.e164())
        .map_err(|e| Rejection::LookupUnavailable(e.to_string()))?;
    if !info.valid {
        return Err(Rejection::NotANumber);
    }
    match info.line_type {
        Some(t) if cfg.allowed_carrier_types.contains(&t) => Ok(n),
        other => Err(Rejection::LineType(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    struct FakeLookup(RefCell<Vec<String>>, Result<LineInfo, ApiError>);
    impl LineTypeLookup for FakeLookup {
        fn line_info(&self, e164: &str) -> Result<LineInfo, ApiError> {
            self.0.borrow_mut().push(e164.into());
            self.1.clone()
        }
    }

    fn cfg(extra: &str) -> Config {
        Config::parse(&format!(
            "account_sid = \"AC0123456789abcdef0123456789abcdef\"\nauth_token = \"t\"\nservice_sid = \"VA0123456789abcdef0123456789abcdef\"\n{extra}"
        ))
        .unwrap()
    }

    fn lookup(t: &str) -> FakeLookup {
        FakeLookup(
            RefCell::new(vec![]),
            Ok(LineInfo {
                valid: true,
                line_type: Some(t.into()),
            }),
        )
    }

    #[test]
    fn countries_are_checked_from_the_number_itself() {
        let c = cfg("");
        assert!(check_number("(201) 555-2671", &c).is_ok());
        let gb = check_number("+44 20 7946 0018", &c).unwrap_err();
        assert_eq!(gb.message(), "Numbers from GB are not allowed.");
        let c = cfg("[phone_number]\nallowed_countries = [\"US\", \"GB\"]\ndisallowed_countries = [\"GB\"]\n");
        assert_eq!(
            check_number("+44 20 7946 0018", &c),
            Err(Rejection::Country(Some("GB".into())))
        );
        assert_eq!(
            check_number("hello", &c).unwrap_err().message(),
            "That does not look like a phone number."
        );
    }

    #[test]
    fn line_types_from_lookup() {
        let c = cfg("");
        assert!(check_new_number("+12015552671", &c, &lookup("mobile"), true).is_ok());
        let e = check_new_number("+12015552671", &c, &lookup("landline"), true).unwrap_err();
        assert_eq!(
            e.message(),
            "Landline numbers cannot receive codes; use a mobile number."
        );
        let c = cfg("[phone_number]\nallowed_carrier_types = [\"mobile\", \"voip\"]\n");
        assert!(check_new_number("+12015552671", &c, &lookup("nonFixedVoip"), true).is_ok());
        assert!(check_new_number("+12015552671", &c, &lookup("fixedVoip"), true).is_ok());
        assert!(check_new_number("+12015552671", &c, &lookup("tollFree"), true).is_err());
    }

    #[test]
    fn lookup_failure_fails_closed_and_lookup_can_be_off() {
        let down = FakeLookup(
            RefCell::new(vec![]),
            Err(ApiError::Unavailable("timeout".into())),
        );
        let e = check_new_number("+12015552671", &cfg(""), &down, true).unwrap_err();
        assert_eq!(
            e.message(),
            "Unable to check this number right now; try again later."
        );
        let off = cfg("[phone_number]\ncarrier_lookup = false\n");
        assert!(check_new_number("+12015552671", &off, &down, true).is_ok());
        assert!(check_new_number("+12015552671", &cfg(""), &down, false).is_ok());
        assert!(down.0.borrow().len() == 1, "only the first call looked up");
    }
}
