//! Bad input, fuzzed: the config parser, phone-number input, code input, the
//! state-file parser, the user-name → file-name encoding and Twilio's answers.
//!
//! cargo-fuzz needs a nightly compiler, which this project does not use, so
//! these are proptest properties (random inputs, shrunk on failure) plus a
//! corpus of hand-made inputs kept in tests/corpus/<target>/. Each property
//! runs FUZZ_CASES cases (default 1000): bounded time in CI.

use pam_twilio_2fa::config::Config;
use pam_twilio_2fa::flow::normalise_code;
use pam_twilio_2fa::number_policy::check_number;
use pam_twilio_2fa::phone::PhoneNumber;
use pam_twilio_2fa::state::{file_name_for, parse_state};
use pam_twilio_2fa::twilio_client::interpret;
use pam_twilio_2fa::verify::ApiError;
use proptest::prelude::*;
use std::path::PathBuf;

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1000)
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "empty corpus {}", dir.display());
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// ---- the properties, shared by the corpus and the random inputs -------------

fn config_input(s: &str) {
    // Ok or a one-line error naming the problem; never a panic.
    match Config::parse(s) {
        Ok(c) => {
            let _ = c.summary();
        }
        Err(e) => assert!(!e.0.is_empty() && !e.0.contains('\n'), "{e:?}"),
    }
}

fn phone_input(s: &str) {
    let base = Config::parse(
        "account_sid = \"AC0123456789abcdef0123456789abcdef\"\nauth_token = \"t\"\nservice_sid = \"VA0123456789abcdef0123456789abcdef\"\n",
    )
    .unwrap();
    for region in ["US", "GB", ""] {
        if let Ok(n) = PhoneNumber::parse(s, region) {
            let e164 = n.e164();
            assert!(
                e164.starts_with('+') && e164[1..].bytes().all(|b| b.is_ascii_digit()),
                "{e164}"
            );
            let last4 = &e164[e164.len().saturating_sub(4)..];
            assert!(n.masked_e164().ends_with(last4));
            let shown = n.masked_national();
            let visible = shown.chars().filter(|c| c.is_ascii_digit()).count();
            assert!(visible <= 4, "{shown}");
        }
    }
    let _ = check_number(s, &base);
}

fn code_input(s: &str) {
    if let Some(code) = normalise_code(s) {
        assert!(
            (4..=10).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit()),
            "{code}"
        );
        let stripped: String = s.chars().filter(|c| *c != ' ' && *c != '-').collect();
        assert_eq!(code, stripped);
    }
}

fn state_input(s: &str) {
    if let Ok(st) = parse_state(s) {
        let again = parse_state(&serde_json::to_string(&st).unwrap()).unwrap();
        assert_eq!(again, st);
    }
}

fn user_name_input(name: &[u8]) {
    let f = file_name_for(name);
    assert!(!f.is_empty() && f.len() <= 200, "{f}");
    assert!(
        !f.contains('/') && !f.starts_with('.') && !f.contains('\0'),
        "{f}"
    );
    assert!(f.starts_with("u-") || f.starts_with("h-"), "{f}");
}

fn twilio_input(status: u16, body: &str) {
    match interpret(status, body) {
        Ok(v) => assert!((200..300).contains(&status) && v.is_object()),
        Err(ApiError::Unavailable(_)) => {}
        Err(ApiError::Twilio {
            http_status,
            message,
            ..
        }) => {
            assert!((400..500).contains(&http_status), "{http_status}");
            assert!(!message.chars().any(|c| c.is_control()), "{message:?}");
        }
    }
    if status >= 500 {
        assert!(matches!(
            interpret(status, body),
            Err(ApiError::Unavailable(_))
        ));
    }
}

// ---- the corpus ---------------------------------------------------------------

#[test]
fn corpus_inputs() {
    for b in corpus("config") {
        config_input(&text(&b));
    }
    for b in corpus("phone") {
        phone_input(&text(&b));
    }
    for b in corpus("code") {
        code_input(&text(&b));
    }
    for b in corpus("state") {
        state_input(&text(&b));
    }
    let names = corpus("user_name");
    for b in &names {
        user_name_input(b);
    }
    let files: std::collections::HashSet<String> = names.iter().map(|n| file_name_for(n)).collect();
    assert_eq!(files.len(), names.len(), "two corpus names share a file");
    for b in corpus("twilio") {
        let t = text(&b);
        let (status, body) = t.split_once('\n').unwrap_or((&t, ""));
        twilio_input(status.trim().parse().unwrap_or(200), body);
    }
    // The corpus really holds the hard cases.
    assert!(parse_state(&text(
        &std::fs::read(corpus_path("state/full.json")).unwrap()
    ))
    .is_ok());
    assert!(parse_state(&text(
        &std::fs::read(corpus_path("state/torn.json")).unwrap()
    ))
    .is_err());
}

fn corpus_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(rel)
}

// ---- random inputs --------------------------------------------------------------

/// Strings near the real shape of each input, plus anything at all.
fn config_text() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        "[a-z_]{1,20} = \"[ -~]{0,40}\"",
        "[a-z_]{1,20} = [0-9-]{1,25}",
        "[a-z_]{1,20} = \\[\"[a-z]{0,8}\"(, \"[a-z]{0,8}\"){0,3}\\]",
        "\\[[a-z_.]{0,20}\\]",
        any::<String>(),
    ];
    prop::collection::vec(line, 0..12).prop_map(|l| {
        format!(
            "account_sid = \"AC0123456789abcdef0123456789abcdef\"\nauth_token = \"t\"\nservice_sid = \"VA0123456789abcdef0123456789abcdef\"\n{}",
            l.join("\n")
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn config_parser(s in prop_oneof![config_text(), any::<String>()]) {
        config_input(&s);
    }

    #[test]
    fn phone_numbers(s in prop_oneof!["[+]?[0-9 ()+.-]{0,30}", "[+]?[0-9]{1,20}", any::<String>()]) {
        phone_input(&s);
    }

    #[test]
    fn codes(s in prop_oneof!["[0-9 -]{0,14}", any::<String>()]) {
        code_input(&s);
    }

    #[test]
    fn state_files(s in prop_oneof![
        "\\{\"attempts\": [0-9-]{1,12}(, \"locked_until\": [0-9-]{1,22})?\\}",
        "\\{\"pending\": \\{\"sid\": \"VE[0-9a-f]{30,34}\", \"method\": \"(sms|call|fax)\", \"to\": \"[+0-9]{0,16}\", \"sent_at\": [0-9]{1,20}\\}\\}",
        any::<String>(),
    ]) {
        state_input(&s);
    }

    #[test]
    fn user_name_files_are_safe_and_distinct(a in prop::collection::vec(any::<u8>(), 0..320),
                                             b in prop::collection::vec(any::<u8>(), 0..320)) {
        user_name_input(&a);
        user_name_input(&b);
        if a != b {
            prop_assert_ne!(file_name_for(&a), file_name_for(&b));
        }
    }

    #[test]
    fn twilio_answers(status in 100u16..600, body in prop_oneof![
        "\\{\"code\": [0-9-]{1,12}, \"message\": \"[ -~]{0,30}\", \"status\": [0-9]{3}\\}",
        "\\{\"sid\": \"[A-Za-z0-9./]{0,40}\", \"status\": \"[a-z]{0,12}\"\\}",
        any::<String>(),
    ]) {
        twilio_input(status, &body);
    }
}
