//! Reads the LDIF that `ldapsearch -LLL` prints (RFC 2849): records split by
//! empty lines, long lines folded (a continuation starts with one space),
//! `attr: value` or `attr:: base64` (values that are not safe text: leading
//! space or colon, trailing space, non-ASCII, control characters). Comment
//! lines are skipped: with -LLL they only carry search references, which
//! are not followed (Active Directory answers a search from the domain root
//! with references to its DNS and configuration partitions).

use base64::Engine;

/// One entry: its DN and its attribute values in the order printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub dn: String,
    pub values: Vec<(String, Vec<u8>)>,
}

impl Entry {
    /// The values of attribute `name` (case-insensitive; attribute options
    /// such as `;lang-en` are ignored), in order.
    pub fn values_of<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.values
            .iter()
            .filter(move |(attr, _)| {
                let base = attr.split(';').next().unwrap_or("");
                base.eq_ignore_ascii_case(name)
            })
            .map(|(_, v)| v.as_slice())
    }
}

/// The entries in `text`. Anything that is not LDIF as ldapsearch writes it
/// is an error: the output is then not trusted at all.
pub fn parse(text: &[u8]) -> Result<Vec<Entry>, String> {
    let text = std::str::from_utf8(text).map_err(|_| "ldapsearch output is not UTF-8")?;
    let mut entries = Vec::new();
    let mut lines: Vec<String> = Vec::new();
    for raw in text.split('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(rest) = raw.strip_prefix(' ') {
            match lines.last_mut() {
                Some(last) => last.push_str(rest),
                None => return Err("ldapsearch output starts with a continuation line".into()),
            }
        } else if raw.is_empty() {
            if !lines.is_empty() {
                entries.push(record(&lines)?);
                lines.clear();
            }
        } else {
            lines.push(raw.to_string());
        }
    }
    if !lines.is_empty() {
        entries.push(record(&lines)?);
    }
    // A record made only of comments (a search reference) is no entry.
    Ok(entries.into_iter().flatten().collect())
}

/// One record's unfolded lines: `Some(entry)`, or `None` for comments only.
fn record(lines: &[String]) -> Result<Option<Entry>, String> {
    let mut fields = lines.iter().filter(|l| !l.starts_with('#'));
    let Some(first) = fields.next() else {
        return Ok(None);
    };
    let (name, dn) = field(first)?;
    if !name.eq_ignore_ascii_case("dn") {
        return Err(format!(
            "ldapsearch output: a record starts with {name:?}, not dn"
        ));
    }
    let dn = String::from_utf8(dn).map_err(|_| "ldapsearch output: a DN is not UTF-8")?;
    let values = fields.map(|l| field(l)).collect::<Result<_, _>>()?;
    Ok(Some(Entry { dn, values }))
}

/// `name: value` or `name:: base64`.
fn field(line: &str) -> Result<(String, Vec<u8>), String> {
    let (name, rest) = line
        .split_once(':')
        .ok_or_else(|| "ldapsearch output: a line without a colon".to_string())?;
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b';' || b == b'.');
    if !name_ok {
        return Err("ldapsearch output: an attribute name that is not one".into());
    }
    let value = if let Some(b64) = rest.strip_prefix(':') {
        base64::engine::general_purpose::STANDARD
            .decode(b64.trim_start_matches(' '))
            .map_err(|_| format!("ldapsearch output: {name}: bad base64"))?
    } else if rest.starts_with('<') {
        return Err(format!("ldapsearch output: {name}: a URL value"));
    } else {
        rest.trim_start_matches(' ').as_bytes().to_vec()
    };
    Ok((name.to_string(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_values_base64_and_folding() {
        let text = "dn: uid=alice,ou=people,dc=example,dc=org\n\
                    mobile: +12015550101\n\
                    mobile:: KzEgMjAxIDU1NSAwMTAzIA==\n\
                    telephoneNumber: +1201\n 5550102\n\
                    \n\
                    # refldap://dc=example,dc=org/DC=DomainDnsZones\n\
                    \n\
                    dn:: dWlkPW8qYihyKSxkYz1vcmc=\n\
                    Mobile;lang-en: 1\n";
        let entries = parse(text.as_bytes()).unwrap();
        assert_eq!(entries.len(), 2);
        let a = &entries[0];
        assert_eq!(a.dn, "uid=alice,ou=people,dc=example,dc=org");
        let mobiles: Vec<&[u8]> = a.values_of("MOBILE").collect();
        assert_eq!(
            mobiles,
            vec![&b"+12015550101"[..], &b"+1 201 555 0103 "[..]]
        );
        let phones: Vec<&[u8]> = a.values_of("telephonenumber").collect();
        assert_eq!(phones, vec![&b"+12015550102"[..]]);
        assert_eq!(entries[1].dn, "uid=o*b(r),dc=org");
        assert_eq!(entries[1].values_of("mobile").count(), 1);
    }

    #[test]
    fn nothing_is_no_entry() {
        assert_eq!(parse(b"").unwrap(), vec![]);
        assert_eq!(parse(b"\n\n").unwrap(), vec![]);
        assert_eq!(
            parse(b"# search reference\n# refldap://x/\n\n").unwrap(),
            vec![]
        );
    }

    #[test]
    fn what_is_not_ldif_is_refused() {
        assert!(parse(b"mobile: 1\n").is_err());
        assert!(parse(b" folded first\n").is_err());
        assert!(parse(b"dn: x\nno colon here\n").is_err());
        assert!(parse(b"dn: x\nmobile:: ***\n").is_err());
        assert!(parse(b"dn: x\nmobile:< file:///etc/shadow\n").is_err());
        assert!(parse(b"dn: x\nmo bile: 1\n").is_err());
        assert!(parse(b"dn: x\nmobile: \xff\n").is_err());
    }
}
