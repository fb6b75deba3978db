//! Phone numbers: parsing to E.164, and masking for display and logs.

use std::fmt;

/// A number that parsed and is valid, kept in E.164 form.
#[derive(Clone, PartialEq, Eq)]
pub struct PhoneNumber {
    e164: String,
    national: String,
    /// ISO region ("US", "GB"), when the number belongs to one.
    region: Option<String>,
    /// Digits of the country calling code (1 for +1, 2 for +44).
    cc_len: usize,
}

/// What parsing found, to be kept (in the user's state) so that later
/// logins need not load the phone-number metadata: that first parse costs
/// tens of milliseconds per process, and every login is a fresh process.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParsedNumber {
    /// The text the source gave, and the region it was read in.
    pub raw: String,
    pub default_region: String,
    pub e164: String,
    pub national: String,
    pub region: Option<String>,
    pub cc_len: usize,
}

// Full numbers must not leak through `{:?}` into a log line.
impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked_e164())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not a phone number at all, or not one that can exist.
    Invalid,
    /// No leading + and no default region to read it in.
    NeedsCountryCode,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Invalid => f.write_str("not a valid phone number"),
            ParseError::NeedsCountryCode => {
                f.write_str("the number must start with + and the country code")
            }
        }
    }
}

pub fn region_id(region: &str) -> Option<phonenumber::country::Id> {
    region.parse().ok()
}

impl PhoneNumber {
    /// Parses `raw` (read in `default_region` unless it starts with +).
    pub fn parse(raw: &str, default_region: &str) -> Result<PhoneNumber, ParseError> {
        let raw = raw.trim();
        // Bound the input before handing it to the parser: numbers are short.
        if raw.is_empty() || raw.len() > 40 || raw.chars().any(|c| c.is_control()) {
            return Err(ParseError::Invalid);
        }
        let region = if default_region.is_empty() {
            if !raw.starts_with('+') {
                return Err(ParseError::NeedsCountryCode);
            }
            None
        } else {
            Some(region_id(default_region).ok_or(ParseError::Invalid)?)
        };
        let n = phonenumber::parse(region, raw).map_err(|_| ParseError::Invalid)?;
        if !phonenumber::is_valid(&n) || n.extension().is_some() {
            return Err(ParseError::Invalid);
        }
        Ok(PhoneNumber {
            e164: n.format().mode(phonenumber::Mode::E164).to_string(),
            national: n.format().mode(phonenumber::Mode::National).to_string(),
            region: n.country().id().map(|id| id.as_ref().to_string()),
            cc_len: n.code().value().to_string().len(),
        })
    }

    /// For the cache: what this parse of `raw` (in `default_region`) found.
    pub fn to_parsed(&self, raw: &str, default_region: &str) -> ParsedNumber {
        ParsedNumber {
            raw: raw.to_string(),
            default_region: default_region.to_string(),
            e164: self.e164.clone(),
            national: self.national.clone(),
            region: self.region.clone(),
            cc_len: self.cc_len,
        }
    }

    /// From the cache, when it is for this very `raw` text and region; a
    /// cache entry that does not look like a parse result is ignored.
    pub fn from_parsed(p: &ParsedNumber, raw: &str, default_region: &str) -> Option<PhoneNumber> {
        let digits = p.e164.strip_prefix('+')?;
        let sane = p.raw == raw
            && p.default_region == default_region
            && (2..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (1..=3).contains(&p.cc_len)
            && !p.national.chars().any(|c| c.is_control());
        sane.then(|| PhoneNumber {
            e164: p.e164.clone(),
            national: p.national.clone(),
            region: p.region.clone(),
            cc_len: p.cc_len,
        })
    }

    /// The ISO region the number belongs to, from the number itself.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    pub fn e164(&self) -> &str {
        &self.e164
    }

    /// The national format, e.g. "(201) 555-2671".
    pub fn national(&self) -> &str {
        &self.national
    }

    /// The national format with every digit but the last four hidden,
    /// e.g. "(XXX) XXX-2671": what a user sees when `obfuscate` is on.
    pub fn masked_national(&self) -> String {
        mask_digits(&self.national, 'X')
    }

    /// For logs: the country code and the last four digits, e.g. "+1******2671".
    pub fn masked_e164(&self) -> String {
        let digits: Vec<char> = self.e164.chars().skip(1).collect();
        let cc_len = self.cc_len;
        digits
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i < cc_len || i + 4 >= digits.len() {
                    *c
                } else {
                    '*'
                }
            })
            .fold(String::from("+"), |mut s, c| {
                s.push(c);
                s
            })
    }

    /// What the user is shown as the destination of a code.
    pub fn display(&self, obfuscate: bool) -> String {
        if obfuscate {
            self.masked_national()
        } else {
            self.national.clone()
        }
    }
}

fn mask_digits(s: &str, with: char) -> String {
    let total = s.chars().filter(|c| c.is_ascii_digit()).count();
    let mut seen = 0;
    s.chars()
        .map(|c| {
            if c.is_ascii_digit() {
                seen += 1;
                if seen + 4 <= total {
                    return with;
                }
            }
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn us_number_normalises_and_masks() {
        let n = PhoneNumber::parse("(201) 555-2671", "US").unwrap();
        assert_eq!(n.e164(), "+12015552671");
        assert_eq!(n.national(), "(201) 555-2671");
        assert_eq!(n.masked_national(), "(XXX) XXX-2671");
        assert_eq!(n.masked_e164(), "+1******2671");
        assert_eq!(n.display(false), "(201) 555-2671");
        assert_eq!(n.region(), Some("US"));
        assert!(!format!("{n:?}").contains("555"));
    }

    #[test]
    fn foreign_number_keeps_country_code_in_log_mask() {
        let n = PhoneNumber::parse("+44 20 7946 0018", "US").unwrap();
        assert_eq!(n.e164(), "+442079460018");
        assert_eq!(n.region(), Some("GB"));
        assert_eq!(n.masked_e164(), "+44******0018");
        assert!(n.masked_national().ends_with("0018"));
        assert!(!n.masked_national().contains("7946"));
    }

    #[test]
    fn bad_numbers_are_rejected() {
        for raw in [
            "",
            "hello",
            "123",
            "+1 555",
            "201\u{0}5552671",
            &"9".repeat(100),
        ] {
            assert!(PhoneNumber::parse(raw, "US").is_err(), "{raw:?}");
        }
        assert_eq!(
            PhoneNumber::parse("2015552671", ""),
            Err(ParseError::NeedsCountryCode)
        );
    }
}
