//! The reference cannot drift from the code: every config key the parser
//! accepts is in docs/configuration.md, in pam_twilio_2fa(8) and in the
//! packaged config.toml, with the same defaults (and each documented default
//! is what the code does when the key is absent); every relative link in the
//! README, SECURITY.md and docs/ reaches a file, and a heading when it names
//! one; the README links every page in docs/.
//!
//! The keys come from the parser itself: an unknown key is refused with the
//! list of the keys it expected, so a key added to the code shows up here
//! without anyone updating a list.

use pam_twilio_2fa::config::Config;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const SID_HEX: &str = "0123456789abcdef0123456789abcdef";
const PROBE: &str = "zzz_probe";

fn base() -> String {
    format!(
        "account_sid = \"AC{SID_HEX}\"\nauth_token = \"secret\"\nservice_sid = \"VA{SID_HEX}\"\n"
    )
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The parser's error for `text`, which must be refused.
fn refusal(text: &str) -> String {
    match Config::parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// The names in "... expected one of `a`, `b`" or "expected `a`".
fn expected_names(msg: &str) -> Vec<String> {
    let Some((_, list)) = msg.split_once("expected") else {
        return Vec::new();
    };
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect()
}

/// How a top-level key is written.
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    Value,
    /// `[name]` with these keys.
    Table(Vec<String>),
    /// `[name.VARIANT]`, each with these keys.
    Map(Vec<String>, Vec<String>),
    /// `[[name]]` with these keys.
    Blocks(Vec<String>),
}

/// Every top-level key the parser accepts, and the shape of its value.
fn accepted() -> BTreeMap<String, Shape> {
    let top = refusal(&format!("{PROBE} = 1\n{}", base()));
    let unknown_field = format!("unknown field `{PROBE}`");
    let unknown_variant = format!("unknown variant `{PROBE}`");
    let mut out = BTreeMap::new();
    for key in expected_names(&top) {
        let table = refusal(&format!("{}[{key}]\n{PROBE} = 1\n", base()));
        let blocks = Config::parse(&format!("{}[[{key}]]\n{PROBE} = 1\n", base()))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        let shape = if table.contains(&unknown_field) {
            Shape::Table(expected_names(&table))
        } else if table.contains(&unknown_variant) {
            let variants = expected_names(&table);
            let inner = refusal(&format!("{}[{key}.{}]\n{PROBE} = 1\n", base(), variants[0]));
            assert!(inner.contains(&unknown_field), "{inner}");
            Shape::Map(variants, expected_names(&inner))
        } else if blocks.contains(&unknown_field) {
            Shape::Blocks(expected_names(&blocks))
        } else {
            Shape::Value
        };
        out.insert(key, shape);
    }
    // If the parser's messages change shape, fail loudly rather than check nothing.
    assert!(
        out.len() > 20 && out.contains_key("service_sid"),
        "top-level keys not found in: {top}"
    );
    assert!(
        out.values().any(|s| matches!(s, Shape::Table(_))),
        "no [table] found: {out:?}"
    );
    out
}

/// Where a key lives: `None` for the top level, else the table's name.
type KeyPath = (Option<String>, String);

fn key_paths(keys: &BTreeMap<String, Shape>) -> Vec<KeyPath> {
    let mut out = Vec::new();
    for (k, shape) in keys {
        match shape {
            Shape::Value => out.push((None, k.clone())),
            Shape::Table(inner) | Shape::Map(_, inner) | Shape::Blocks(inner) => {
                out.extend(inner.iter().map(|i| (Some(k.clone()), i.clone())))
            }
        }
    }
    out
}

fn show(p: &KeyPath) -> String {
    match &p.0 {
        None => p.1.clone(),
        Some(t) => format!("[{t}] {}", p.1),
    }
}

/// The table a heading or config line opens: `[phones]`, `[methods.sms]`,
/// `[[policy]]` all name their first segment.
fn table_marker(text: &str) -> Option<String> {
    let start = text.find('[')?;
    let rest = text[start..].trim_start_matches('[');
    let end = rest.find(']')?;
    let name = rest[..end].split('.').next()?.trim();
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then(|| name.to_string())
}

fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect()
}

/// Quotes and spacing do not matter when comparing defaults.
fn same_value(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.replace('"', "")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    norm(a) == norm(b)
}

/// Lines outside fenced code blocks.
fn prose(md: &str) -> Vec<&str> {
    let mut fenced = false;
    md.lines()
        .filter(|l| {
            if l.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// One documented key: the table its section is about, the default cell.
struct DocRow {
    path: KeyPath,
    default: String,
}

/// docs/configuration.md: table rows `| \`key\` | type | default | meaning |`,
/// each belonging to the table its heading names (none: the top level).
fn doc_rows(md: &str) -> (Vec<DocRow>, Vec<String>) {
    let (mut rows, mut headings) = (Vec::new(), Vec::new());
    let mut table = None;
    for line in prose(md) {
        if line.starts_with('#') {
            table = table_marker(line);
            headings.push(line.to_string());
        } else if let Some(rest) = line.strip_prefix("| `") {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let key = rest.split('`').next().unwrap_or("").to_string();
            rows.push(DocRow {
                path: (table.clone(), key),
                default: cells.get(3).copied().unwrap_or("").to_string(),
            });
        }
    }
    (rows, headings)
}

/// A default cell holding one literal: `` `180` ``.
fn literal(cell: &str) -> Option<&str> {
    let inner = cell.strip_prefix('`')?.strip_suffix('`')?;
    (!inner.contains('`')).then_some(inner)
}

/// Plain text of a man macro line, as groff joins its arguments.
fn man_plain(line: &str) -> String {
    let (mac, args) = line.split_once(' ').unwrap_or((line, ""));
    let mut parts = Vec::new();
    let mut rest = args.trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').unwrap_or(r.len());
            parts.push(&r[..end]);
            rest = r[(end + 1).min(r.len())..].trim_start();
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            parts.push(&rest[..end]);
            rest = rest[end..].trim_start();
        }
    }
    let joined = match mac {
        ".BR" | ".RB" | ".BI" | ".IB" | ".IR" | ".RI" => parts.concat(),
        _ if mac.starts_with('.') => parts.join(" "),
        _ => line.to_string(),
    };
    joined
        .replace("\\(dq", "\"")
        .replace("\\-", "-")
        .replace("\\&", "")
        .replace("\\fB", "")
        .replace("\\fI", "")
        .replace("\\fR", "")
        .replace("\\fP", "")
}

/// The `.TP` entries of a man page: header line and body, as plain text.
fn man_entries(man: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut lines = man.lines();
    let mut current: Option<(String, String)> = None;
    while let Some(line) = lines.next() {
        if line == ".TP" {
            out.extend(current.take());
            let header = lines.next().map(man_plain).unwrap_or_default();
            current = Some((header, String::new()));
        } else if line.starts_with(".SH") || line.starts_with(".SS") {
            out.extend(current.take());
        } else if let Some((_, body)) = current.as_mut() {
            body.push_str(&man_plain(line));
            body.push('\n');
        }
    }
    out.extend(current);
    out
}

/// "KEY (DEFAULT)" or "[table] KEY (DEFAULT)" headers: one key with its default.
fn man_default(header: &str) -> Option<(KeyPath, String)> {
    let (table, rest) = match header.strip_prefix('[') {
        Some(_) => {
            let (t, r) = header.split_once(' ')?;
            (table_marker(t), r)
        }
        None => (None, header),
    };
    let (key, value) = rest.split_once(" (")?;
    let value = value.strip_suffix(')')?;
    (words(key) == [key]).then(|| ((table, key.to_string()), value.to_string()))
}

/// Is `path` described by a man entry?
fn in_man(entries: &[(String, String)], path: &KeyPath) -> bool {
    entries.iter().any(|(header, body)| match &path.0 {
        None => !header.starts_with('[') && words(header).contains(&path.1.as_str()),
        Some(t) => {
            table_marker(header).as_deref() == Some(t.as_str())
                && header.trim_start().starts_with('[')
                && (words(header).contains(&path.1.as_str())
                    || words(body).contains(&path.1.as_str()))
        }
    })
}

/// packaging/config.toml's lines, uncommented, with the table each is in.
fn config_lines(toml: &str) -> Vec<(Option<String>, String)> {
    let mut table = None;
    let mut out = Vec::new();
    for line in toml.lines() {
        let text = line.trim_start_matches('#').trim();
        if text.starts_with('[') {
            table = table_marker(text);
        } else {
            out.push((table.clone(), text.to_string()));
        }
    }
    out
}

/// The value of `key = value  # comment`.
fn config_value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(key)?.trim_start().strip_prefix('=')?;
    Some(rest.split("  #").next().unwrap_or("").trim())
}

/// A `key = value` line in the key's table; in a `[[block]]` example, a
/// mention in its comments is enough (one example cannot set every key).
fn config_has(lines: &[(Option<String>, String)], path: &KeyPath, blocks: bool) -> bool {
    let needle = format!("{} =", path.1);
    lines.iter().any(|(t, text)| {
        *t == path.0
            && (text.starts_with(&needle)
                || text.contains(&format!(" {needle}"))
                || (blocks && words(text).contains(&path.1.as_str())))
    })
}

#[test]
fn every_accepted_key_is_in_the_docs_the_man_page_and_the_packaged_config() {
    let keys = accepted();
    let paths = key_paths(&keys);
    let doc = read("docs/configuration.md");
    let (rows, headings) = doc_rows(&doc);
    let man = read("packaging/man/pam_twilio_2fa.8");
    let entries = man_entries(&man);
    let packaged = read("packaging/config.toml");
    let lines = config_lines(&packaged);
    let mut missing = Vec::new();

    // A key whose value is a free-form table (a map of names) may be
    // documented by a heading or entry that opens it instead of a row.
    let opened = |text: &str, path: &KeyPath| {
        path.0.is_none() && table_marker(text).as_deref() == Some(path.1.as_str())
    };
    let config_headers: Vec<&str> = packaged
        .lines()
        .map(|l| l.trim_start_matches('#').trim())
        .filter(|l| l.starts_with('['))
        .collect();
    for path in &paths {
        if !rows.iter().any(|r| r.path == *path) && !headings.iter().any(|h| opened(h, path)) {
            missing.push(format!("docs/configuration.md: no row for {}", show(path)));
        }
        let man_opens = entries
            .iter()
            .any(|(h, _)| h.starts_with('[') && opened(h, path));
        if !in_man(&entries, path) && !man_opens {
            missing.push(format!("pam_twilio_2fa(8): no entry for {}", show(path)));
        }
        let blocks = path.0.as_ref().map(|t| &keys[t]);
        if !config_has(&lines, path, matches!(blocks, Some(Shape::Blocks(_))))
            && !config_headers.iter().any(|h| opened(h, path))
        {
            missing.push(format!("packaging/config.toml: no line for {}", show(path)));
        }
    }
    for (name, shape) in &keys {
        if *shape == Shape::Value {
            continue;
        }
        let opens = |h: &str| table_marker(h).as_deref() == Some(name.as_str());
        if !headings.iter().any(|h| opens(h)) {
            missing.push(format!("docs/configuration.md: no heading for [{name}]"));
        }
        if !entries.iter().any(|(h, _)| h.starts_with('[') && opens(h)) {
            missing.push(format!("pam_twilio_2fa(8): no entry for [{name}]"));
        }
        if let Shape::Map(variants, _) = shape {
            for v in variants {
                if !doc.contains(&format!("`{v}`")) {
                    missing.push(format!("docs/configuration.md: [{name}.{v}] not named"));
                }
                if !packaged.contains(&format!("[{name}.{v}]")) {
                    missing.push(format!("packaging/config.toml: no [{name}.{v}]"));
                }
            }
        }
    }
    // Nothing documented that the code does not accept.
    for r in &rows {
        let blocks = r.path.0.as_ref().map(|t| &keys[t]);
        let extra = matches!(blocks, Some(Shape::Blocks(_)))
            && ["users", "groups"].contains(&r.path.1.as_str());
        if !paths.contains(&r.path) && !extra {
            missing.push(format!(
                "docs/configuration.md documents {}, which the code does not accept",
                show(&r.path)
            ));
        }
    }
    assert!(missing.is_empty(), "\n{}", missing.join("\n"));
}

#[test]
fn defaults_agree_between_code_docs_man_page_and_packaged_config() {
    let keys = accepted();
    let (rows, _) = doc_rows(&read("docs/configuration.md"));
    let entries = man_entries(&read("packaging/man/pam_twilio_2fa.8"));
    let man_defaults: BTreeMap<KeyPath, String> =
        entries.iter().filter_map(|(h, _)| man_default(h)).collect();
    let lines = config_lines(&read("packaging/config.toml"));
    let mut wrong = Vec::new();
    // What the code does with no key set; `top_level` records which keys
    // were written, which is all that may differ.
    let plain = |text: &str| {
        let mut cfg = Config::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        cfg.top_level = Default::default();
        format!("{cfg:?}")
    };
    let without = plain(&base());

    for row in &rows {
        let shape = row.path.0.as_ref().map(|t| &keys[t]);
        if matches!(shape, Some(Shape::Blocks(_) | Shape::Map(..))) {
            continue;
        }
        let name = show(&row.path);
        let man = man_defaults.get(&row.path);
        let Some(doc) = literal(&row.default) else {
            if let Some(m) = man {
                wrong.push(format!(
                    "{name}: the man page says ({m}), the docs no literal default"
                ));
            }
            continue;
        };
        match man {
            Some(m) if same_value(m, doc) => {}
            Some(m) => wrong.push(format!("{name}: docs `{doc}`, man page ({m})")),
            None => wrong.push(format!(
                "{name}: docs `{doc}`, the man page gives no default"
            )),
        }
        for (t, text) in &lines {
            if *t == row.path.0 {
                if let Some(v) = config_value(text, &row.path.1) {
                    if !same_value(v, doc) {
                        wrong.push(format!("{name}: docs `{doc}`, packaging/config.toml {v}"));
                    }
                }
            }
        }
        let with = match &row.path.0 {
            None => format!("{}{} = {doc}\n", base(), row.path.1),
            Some(t) => format!("{}[{t}]\n{} = {doc}\n", base(), row.path.1),
        };
        match Config::parse(&with) {
            Ok(_) if plain(&with) == without => {}
            Ok(_) => wrong.push(format!(
                "{name}: `{doc}` is not what the code uses when it is absent"
            )),
            Err(e) => wrong.push(format!(
                "{name}: the documented default `{doc}` is refused: {e}"
            )),
        }
    }
    // Every default the man page states is one the docs state too.
    for (path, m) in &man_defaults {
        if !rows.iter().any(|r| r.path == *path) {
            wrong.push(format!(
                "{}: the man page says ({m}); the docs have no row",
                show(path)
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

/// GitHub's anchor for a heading.
fn slug(heading: &str) -> String {
    heading
        .trim_start_matches('#')
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(md: &str) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for line in prose(md).into_iter().filter(|l| l.starts_with('#')) {
        let s = slug(line);
        let n = seen.entry(s.clone()).or_default();
        out.push(if *n == 0 {
            s.clone()
        } else {
            format!("{s}-{n}")
        });
        *n += 1;
    }
    out
}

/// Relative link targets in a Markdown file's prose.
fn links(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose(md) {
        for part in line.split("](").skip(1) {
            let target = part.split(')').next().unwrap_or("");
            if !target.contains("://") && !target.starts_with("mailto:") {
                out.push(target.to_string());
            }
        }
    }
    out
}

fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md"), root().join("SECURITY.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|e| e.expect("docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

#[test]
fn every_link_in_the_readme_and_docs_reaches_a_file_and_heading() {
    let mut broken = Vec::new();
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).expect("markdown file");
        let dir = file.parent().unwrap_or(Path::new("."));
        let name = file
            .strip_prefix(root())
            .unwrap_or(&file)
            .display()
            .to_string();
        for target in links(&text) {
            let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let dest = if path.is_empty() {
                file.clone()
            } else {
                dir.join(path)
            };
            if !dest.exists() {
                broken.push(format!("{name}: {target}: no such file"));
                continue;
            }
            if !anchor.is_empty() {
                let is_md = dest.extension().is_some_and(|e| e == "md");
                let body = std::fs::read_to_string(&dest).unwrap_or_default();
                if !is_md || !anchors(&body).iter().any(|a| a == anchor) {
                    broken.push(format!("{name}: {target}: no such heading"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "\n{}", broken.join("\n"));
}

#[test]
fn the_readme_links_every_page_in_docs() {
    let readme = read("README.md");
    let linked = links(&readme);
    let docs = markdown_files()
        .into_iter()
        .filter(|p| p.starts_with(root().join("docs")));
    for page in docs {
        let rel = format!("docs/{}", page.file_name().unwrap().to_string_lossy());
        assert!(
            linked
                .iter()
                .any(|l| l.split('#').next() == Some(rel.as_str())),
            "README.md does not link {rel}"
        );
    }
}
