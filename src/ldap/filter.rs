//! The search filter: the configured template with the user name put in as
//! an assertion value escaped per RFC 4515, so no name can change the
//! filter's meaning (`*` would be a wildcard, `(` and `)` new clauses).

/// Where the user name goes in `filter`.
pub const USER_PLACEHOLDER: &str = "{user}";

/// `name` as an RFC 4515 assertion value. The five characters RFC 4515
/// requires escaping (`*`, `(`, `)`, `\`, NUL) are escaped, and so is every
/// byte outside printable ASCII (control characters, and each byte of a
/// non-ASCII name): RFC 4515 allows `\XX` for any byte, and the filter then
/// is plain ASCII whatever the name holds.
pub fn escape_value(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len() * 3);
    for &b in name {
        match b {
            b'*' | b'(' | b')' | b'\\' | 0 => out.push_str(&format!("\\{b:02x}")),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\{b:02x}")),
        }
    }
    out
}

/// The filter for `name`: every `{user}` in `template` replaced by the
/// escaped name.
pub fn for_user(template: &str, name: &[u8]) -> String {
    template.replace(USER_PLACEHOLDER, &escape_value(name))
}

/// What is wrong with a filter template, if anything: it must be one
/// parenthesised filter of printable ASCII that mentions `{user}`, with
/// balanced parentheses (what the escaped name cannot unbalance).
pub fn check_template(template: &str) -> Result<(), String> {
    if !template.contains(USER_PLACEHOLDER) {
        return Err(format!("must contain {USER_PLACEHOLDER}"));
    }
    if !template.starts_with('(') || !template.ends_with(')') {
        return Err("must be one filter in parentheses, e.g. \"(uid={user})\"".into());
    }
    if template.bytes().any(|b| !(0x20..=0x7e).contains(&b)) {
        return Err("must be printable ASCII (write other characters as \\XX)".into());
    }
    let mut depth = 0i32;
    for (i, b) in template.bytes().enumerate() {
        match b {
            b'(' => depth += 1,
            b')' => depth -= 1,
            _ => {}
        }
        if depth < 0 || (depth == 0 && i + 1 < template.len()) {
            return Err("has unbalanced parentheses or more than one filter".into());
        }
    }
    if depth != 0 {
        return Err("has unbalanced parentheses".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_five_special_characters_are_escaped() {
        assert_eq!(escape_value(b"*"), "\\2a");
        assert_eq!(escape_value(b"("), "\\28");
        assert_eq!(escape_value(b")"), "\\29");
        assert_eq!(escape_value(b"\\"), "\\5c");
        assert_eq!(escape_value(b"\0"), "\\00");
        assert_eq!(escape_value(b"o*b(r)"), "o\\2ab\\28r\\29");
        // An escape sequence in the name stays literal.
        assert_eq!(escape_value(b"a\\2a"), "a\\5c2a");
    }

    #[test]
    fn ordinary_names_are_unchanged() {
        assert_eq!(escape_value(b"alice"), "alice");
        assert_eq!(escape_value(b"j.doe-2_x@corp"), "j.doe-2_x@corp");
        assert_eq!(escape_value(b""), "");
    }

    #[test]
    fn non_ascii_and_control_bytes_are_escaped_byte_by_byte() {
        // "é" is C3 A9 in UTF-8.
        assert_eq!(escape_value("josé".as_bytes()), "jos\\c3\\a9");
        assert_eq!(escape_value(b"a\nb\x7f"), "a\\0ab\\7f");
        // Not UTF-8 at all.
        assert_eq!(escape_value(b"\xff"), "\\ff");
        let all: Vec<u8> = (0..=255).collect();
        let escaped = escape_value(&all);
        assert!(escaped.bytes().all(|b| (0x20..=0x7e).contains(&b)));
        assert!(!escaped.contains('*') && !escaped.contains('(') && !escaped.contains(')'));
    }

    #[test]
    fn every_placeholder_is_filled() {
        assert_eq!(
            for_user("(|(uid={user})(mail={user}@x))", b"a*"),
            "(|(uid=a\\2a)(mail=a\\2a@x))"
        );
    }

    #[test]
    fn templates_are_checked() {
        assert!(check_template("(uid={user})").is_ok());
        assert!(check_template("(&(objectClass=user)(sAMAccountName={user}))").is_ok());
        assert!(check_template("(uid=alice)").is_err());
        assert!(check_template("uid={user}").is_err());
        assert!(check_template("(uid={user})(cn=x)").is_err());
        assert!(check_template("(&(uid={user})").is_err());
        assert!(check_template("(uid={user}))(").is_err());
        assert!(check_template("(uid={user}\n)").is_err());
        assert!(check_template("(cn=Jos\u{e9} {user})").is_err());
    }
}
