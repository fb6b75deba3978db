//! Phone numbers: parsing to E.164, masking for display and logs, and the
//! sources that say which number belongs to a user.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A number that parsed and is valid, kept in E.164 form.
#[derive(Clone, PartialEq, Eq)]
pub struct PhoneNumber {
    e164: String,
    national: String,
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
        })
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
        let cc_len = country_code_len(&self.e164);
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

fn country_code_len(e164: &str) -> usize {
    phonenumber::parse(None, e164)
        .map(|n| n.code().value().to_string().len())
        .unwrap_or(1)
}

/// Where a user's number comes from. `Ok(None)`: this source has no number for them.
pub trait PhoneSource {
    fn lookup(&self, user: &str) -> Result<Option<String>, SourceError>;
}

/// A source that exists but cannot be used: our setup is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError(pub String);

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Largest phone file we read; anything bigger is not a phone number.
const MAX_PHONE_FILE: u64 = 1024;
/// Largest users.toml we read.
const MAX_USERS_FILE: u64 = 4 * 1024 * 1024;

/// `[phones] file`: a read-only TOML table `[users]` of user name → number.
pub struct UsersFile {
    pub path: PathBuf,
}

impl PhoneSource for UsersFile {
    fn lookup(&self, user: &str) -> Result<Option<String>, SourceError> {
        let shown = self.path.display();
        let text = read_limited(&self.path, MAX_USERS_FILE)
            .map_err(|e| SourceError(format!("phones.file {shown}: {e}")))?;
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct UsersToml {
            #[serde(default)]
            users: BTreeMap<String, String>,
        }
        let parsed: UsersToml = toml::from_str(&text)
            .map_err(|e| SourceError(format!("phones.file {shown}: {}", e.message().trim())))?;
        Ok(parsed.users.get(user).cloned())
    }
}

/// `[phones] directory`: one file per user, named after the user.
pub struct PhoneDirectory {
    pub path: PathBuf,
}

impl PhoneSource for PhoneDirectory {
    fn lookup(&self, user: &str) -> Result<Option<String>, SourceError> {
        // A name that could leave the directory has no file in it.
        if !is_safe_file_name(user) {
            return Ok(None);
        }
        let file = self.path.join(user);
        match read_limited(&file, MAX_PHONE_FILE) {
            Ok(text) => Ok(Some(text.trim().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SourceError(format!(
                "phones.directory {}: {e}",
                file.display()
            ))),
        }
    }
}

/// The configured sources, asked in order; the first number found wins.
pub struct Sources(pub Vec<Box<dyn PhoneSource>>);

impl PhoneSource for Sources {
    fn lookup(&self, user: &str) -> Result<Option<String>, SourceError> {
        for s in &self.0 {
            if let Some(n) = s.lookup(user)? {
                return Ok(Some(n));
            }
        }
        Ok(None)
    }
}

impl Sources {
    pub fn from_config(c: &crate::config::Config) -> Sources {
        let mut v: Vec<Box<dyn PhoneSource>> = Vec::new();
        if let Some(p) = &c.phones_file {
            v.push(Box::new(UsersFile { path: p.clone() }));
        }
        if let Some(p) = &c.phones_directory {
            v.push(Box::new(PhoneDirectory { path: p.clone() }));
        }
        Sources(v)
    }
}

/// True for names that are a single plain path component.
pub fn is_safe_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && name != "."
        && name != ".."
        && !name.starts_with('.')
        && !name.contains('/')
        && !name.chars().any(|c| c.is_control())
}

/// Reads a regular file, refusing symlink tricks on the last component and
/// anything larger than `limit`.
fn read_limited(path: &Path, limit: u64) -> std::io::Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let md = f.metadata()?;
    if !md.is_file() {
        return Err(std::io::Error::other("is not a regular file"));
    }
    if md.len() > limit {
        return Err(std::io::Error::other(format!(
            "is larger than {limit} bytes"
        )));
    }
    let mut s = String::new();
    f.take(limit).read_to_string(&mut s)?;
    Ok(s)
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
        assert!(!format!("{n:?}").contains("555"));
    }

    #[test]
    fn foreign_number_keeps_country_code_in_log_mask() {
        let n = PhoneNumber::parse("+44 7911 123456", "US").unwrap();
        assert_eq!(n.e164(), "+447911123456");
        assert_eq!(n.masked_e164(), "+44******3456");
        assert!(n.masked_national().ends_with("3456"));
        assert!(!n.masked_national().contains("7911"));
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

    #[test]
    fn directory_source_never_leaves_its_directory() {
        let dir = std::env::temp_dir().join(format!("t2fa-phones-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("alice"), "+12015552671\n").unwrap();
        let src = PhoneDirectory {
            path: dir.join("sub"),
        };
        for name in ["../alice", "..", ".", "", "a/b", "a\nb"] {
            assert_eq!(src.lookup(name), Ok(None), "{name:?}");
        }
        let src = PhoneDirectory { path: dir.clone() };
        assert_eq!(src.lookup("alice"), Ok(Some("+12015552671".into())));
        assert_eq!(src.lookup("bob"), Ok(None));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn first_source_wins() {
        let dir = std::env::temp_dir().join(format!("t2fa-src-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("users.toml");
        std::fs::write(&file, "[users]\nalice = \"+12015550001\"\n").unwrap();
        std::fs::write(dir.join("alice"), "+12015550002").unwrap();
        std::fs::write(dir.join("bob"), "+12015550003").unwrap();
        let s = Sources(vec![
            Box::new(UsersFile { path: file.clone() }),
            Box::new(PhoneDirectory { path: dir.clone() }),
        ]);
        assert_eq!(s.lookup("alice").unwrap().as_deref(), Some("+12015550001"));
        assert_eq!(s.lookup("bob").unwrap().as_deref(), Some("+12015550003"));
        std::fs::write(&file, "[users\n").unwrap();
        assert!(s.lookup("alice").is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
