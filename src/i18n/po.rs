//! A reader for the gettext `.po` files compiled into the module: just the
//! part of the format our catalogs use (msgctxt, msgid, msgid_plural,
//! msgstr, msgstr[N], flags, continuation lines, C escapes).

/// One catalog entry.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Entry {
    pub context: Option<String>,
    pub id: String,
    pub id_plural: Option<String>,
    /// `msgstr`, or `msgstr[0..n]` in order.
    pub translations: Vec<String>,
    pub fuzzy: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Field {
    Context,
    Id,
    IdPlural,
    Str(usize),
}

/// Parses a whole file; the error names the line.
pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    let mut cur = Entry::default();
    let mut field: Option<Field> = None;
    let mut flags_fuzzy = false;
    for (n, raw) in text.lines().enumerate() {
        let at = |why: &str| format!("line {}: {why}", n + 1);
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(flags) = line.strip_prefix("#,") {
            flags_fuzzy |= flags.split(',').any(|f| f.trim() == "fuzzy");
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with('"') {
            let s = unquote(line).ok_or_else(|| at("bad string"))?;
            let f = field.ok_or_else(|| at("string outside an entry"))?;
            target(&mut cur, f).push_str(&s);
            continue;
        }
        let (keyword, rest) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| at("expected a keyword and a string"))?;
        let value = unquote(rest.trim()).ok_or_else(|| at("bad string"))?;
        let next = match keyword {
            "msgctxt" => Field::Context,
            "msgid" => Field::Id,
            "msgid_plural" => Field::IdPlural,
            "msgstr" => Field::Str(0),
            k => match k
                .strip_prefix("msgstr[")
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|i| i.parse::<usize>().ok())
            {
                Some(i) if i < 16 => Field::Str(i),
                _ => return Err(at(&format!("unknown keyword {k}"))),
            },
        };
        // A msgctxt or msgid after a msgstr starts the next entry.
        let starts_entry = matches!(next, Field::Context | Field::Id)
            && !(next == Field::Id && field == Some(Field::Context));
        if starts_entry && field.is_some() {
            entries.push(std::mem::take(&mut cur));
        }
        if starts_entry {
            cur.fuzzy = std::mem::take(&mut flags_fuzzy);
        }
        match next {
            Field::Context => cur.context = Some(String::new()),
            Field::IdPlural => cur.id_plural = Some(String::new()),
            Field::Str(i) => {
                if i != cur.translations.len() {
                    return Err(at("msgstr[N] out of order"));
                }
                cur.translations.push(String::new());
            }
            Field::Id => {}
        }
        target(&mut cur, next).push_str(&value);
        field = Some(next);
    }
    if field.is_some() {
        entries.push(cur);
    }
    Ok(entries)
}

fn target(e: &mut Entry, f: Field) -> &mut String {
    match f {
        Field::Context => e.context.get_or_insert_with(String::new),
        Field::Id => &mut e.id,
        Field::IdPlural => e.id_plural.get_or_insert_with(String::new),
        Field::Str(i) => &mut e.translations[i],
    }
}

/// `"..."` with C escapes.
fn unquote(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(match chars.next()? {
                'n' => '\n',
                't' => '\t',
                '"' => '"',
                '\\' => '\\',
                _ => return None,
            }),
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// The header's `Plural-Forms` value, if any.
pub fn plural_forms(entries: &[Entry]) -> Option<&str> {
    let header = entries
        .iter()
        .find(|e| e.id.is_empty() && e.context.is_none())?;
    header
        .translations
        .first()?
        .lines()
        .find_map(|l| l.strip_prefix("Plural-Forms:"))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_contexts_plurals_continuations_and_escapes() {
        let text = r#"
# comment
msgid ""
msgstr ""
"Language: de\n"
"Plural-Forms: nplurals=2; plural=(n != 1);\n"

#, python-brace-format
msgctxt "a"
msgid "One {n}"
msgid_plural "Many {n}"
msgstr[0] "Eins "
"{n}"
msgstr[1] "Viele \"{n}\""

#, fuzzy
msgctxt "b"
msgid "x"
msgstr "y\\z"
"#;
        let e = parse(text).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(plural_forms(&e), Some("nplurals=2; plural=(n != 1);"));
        assert_eq!(e[1].context.as_deref(), Some("a"));
        assert_eq!(e[1].id_plural.as_deref(), Some("Many {n}"));
        assert_eq!(e[1].translations, ["Eins {n}", "Viele \"{n}\""]);
        assert!(!e[1].fuzzy);
        assert!(e[2].fuzzy);
        assert_eq!(e[2].translations, ["y\\z"]);
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        for bad in [
            "msgid \"a\nmsgstr \"\"",
            "msgid \"a\" x",
            "msgfoo \"a\"",
            "\"orphan\"",
            "msgid \"a\"\nmsgstr[1] \"b\"",
            "msgid \"\\q\"",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
