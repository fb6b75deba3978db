//! Parsing, defaults and every validation error, from config text.

use super::*;

const MINIMAL: &str = r#"
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token = "tok-3f9a7c"
service_sid = "VA0123456789abcdef0123456789abcdef"
"#;

#[test]
fn minimal_config_gets_documented_defaults() {
    let c = Config::parse(MINIMAL).unwrap();
    assert_eq!(c.verify_url, "https://verify.twilio.com");
    assert_eq!(c.allowed_methods, Method::all());
    assert_eq!((c.retry_time, c.max_attempts, c.http_timeout), (180, 5, 10));
    assert_eq!((c.max_attempts_timeout, c.remember), (600, 0));
    assert_eq!(c.state_dir, PathBuf::from("/var/lib/twilio-2fa"));
    assert!(c.obfuscate);
    assert_eq!(c.default_region, "US");
    assert_eq!(c.label(Method::Sms), "text message");
}

#[test]
fn registration_next_to_another_source_says_what_shadows_what() {
    let with = |extra: &str| {
        let c = Config::parse(&format!("{MINIMAL}{extra}")).unwrap();
        c.notes().join("\n")
    };
    let both = "[phones]\ndirectory = \"/d\"\ncommand = \"/bin/q %u\"\nfile = \"/f\"\n";
    let notes = with(&format!("allow_register = true\n{both}"));
    assert!(notes.contains("read before the command"), "{notes}");
    assert!(notes.contains("shadows the command's number"), "{notes}");
    assert!(
        notes.contains("the file is read before the directory /d"),
        "{notes}"
    );
    // Change alone (on by default) shadows nothing new.
    let notes = with(both);
    assert!(!notes.contains("shadow"), "{notes}");
    assert!(!with("allow_register = true\n[phones]\ndirectory = \"/d\"\n").contains("shadow"));
}

#[test]
fn unknown_key_is_named() {
    let e = Config::parse(&format!("{MINIMAL}\nmax_atempts = 3\n")).unwrap_err();
    assert!(e.0.contains("max_atempts"), "{e}");
}

#[test]
fn wrong_type_is_named() {
    let e = Config::parse(&format!("{MINIMAL}\nretry_time = \"soon\"\n")).unwrap_err();
    assert!(e.0.starts_with("retry_time: "), "{e}");
    let e = Config::parse(&format!("{MINIMAL}[phone_number]\ndefault_region = 1\n")).unwrap_err();
    assert!(e.0.starts_with("phone_number.default_region: "), "{e}");
}

#[test]
fn missing_required_key_is_named() {
    let e =
        Config::parse("auth_token = \"x\"\nservice_sid = \"VA0123456789abcdef0123456789abcdef\"\n")
            .unwrap_err();
    assert!(e.0.contains("account_sid"), "{e}");
}

#[test]
fn secret_never_in_debug_output() {
    let c = Config::parse(MINIMAL).unwrap();
    assert!(!format!("{c:?}").contains("tok-3f9a7c"));
    assert!(!c.summary().contains("tok-3f9a7c"));
}

#[test]
fn plain_http_only_for_loopback() {
    let ok = format!("{MINIMAL}verify_url = \"http://127.0.0.1:8080\"\n");
    assert!(Config::parse(&ok).is_ok());
    let ok6 = format!("{MINIMAL}verify_url = \"http://[::1]:8080\"\n");
    assert!(Config::parse(&ok6).is_ok());
    let bad = format!("{MINIMAL}verify_url = \"http://verify.example.com\"\n");
    assert!(Config::parse(&bad).unwrap_err().0.contains("verify_url"));
    let sneaky = format!("{MINIMAL}verify_url = \"http://127.0.0.1.evil.com\"\n");
    assert!(Config::parse(&sneaky).is_err());
}

#[test]
fn bad_values_are_rejected_with_key() {
    for (line, key) in [
        ("allowed_methods = []", "allowed_methods"),
        ("allowed_methods = [\"sms\", \"sms\"]", "allowed_methods"),
        ("allowed_methods = [\"email\"]", "email"),
        ("max_attempts = 0", "max_attempts"),
        ("http_timeout = 0", "http_timeout"),
        ("auth_token_file = \"/nonexistent\"", "auth_token"),
        ("[phone_number]\ndefault_region = \"XX\"", "default_region"),
        ("[phones]\nfile = \"relative.toml\"", "phones.file"),
        ("[phones]\ncommand_timeout = 0", "phones.command_timeout"),
        ("[phones]\ncommand_timeout = 31", "phones.command_timeout"),
        ("[methods.sms]\nlabel = \"\"", "methods.sms.label"),
    ] {
        let e = Config::parse(&format!("{MINIMAL}{line}\n")).unwrap_err();
        assert!(e.0.contains(key), "{line}: {e}");
    }
    let e = Config::parse(&MINIMAL.replace("VA0123", "VX0123")).unwrap_err();
    assert!(e.0.contains("service_sid"));
}

const KEYED: &str = r#"
api_key_sid = "SK0123456789abcdef0123456789abcdef"
api_key_secret = "key-secret-77"
service_sid = "VA0123456789abcdef0123456789abcdef"
"#;

#[test]
fn api_key_or_auth_token_but_not_both() {
    let c = Config::parse(KEYED).unwrap();
    assert_eq!(c.credentials.username, "SK0123456789abcdef0123456789abcdef");
    assert_eq!(c.account_sid, None);
    assert!(!format!("{c:?}").contains("key-secret-77"));
    assert!(c.summary().contains("API key SK0123"));
    let both = format!(
        "{KEYED}auth_token = \"x\"\naccount_sid = \"AC0123456789abcdef0123456789abcdef\"\n"
    );
    assert!(Config::parse(&both).unwrap_err().0.contains("not both"));
    let bad = KEYED.replace("SK0123", "SX0123");
    assert!(Config::parse(&bad).unwrap_err().0.contains("api_key_sid"));
    let no_secret = KEYED.replace("api_key_secret = \"key-secret-77\"\n", "");
    assert!(Config::parse(&no_secret)
        .unwrap_err()
        .0
        .contains("api_key_secret"));
    let token_without_account =
        MINIMAL.replace("account_sid = \"AC0123456789abcdef0123456789abcdef\"\n", "");
    assert!(Config::parse(&token_without_account)
        .unwrap_err()
        .0
        .contains("account_sid"));
}

#[test]
fn policy_keys_are_checked() {
    for (line, key) in [
        ("http_proxy = \"socks5://p:1080\"", "http_proxy"),
        ("http_proxy = \"http://\"", "http_proxy"),
        ("only_groups = [\"\"]", "only_groups"),
        ("exempt_groups = [\"a b\"]", "exempt_groups"),
        ("trusted_networks = [\"10.0.0.0/40\"]", "trusted_networks"),
        ("trusted_networks = [\"intranet\"]", "trusted_networks"),
    ] {
        let e = Config::parse(&format!("{MINIMAL}{line}\n")).unwrap_err();
        assert!(e.0.contains(key), "{line}: {e}");
    }
    let c = Config::parse(&format!(
        "{MINIMAL}http_proxy = \"http://proxy.example.com:3128\"\ntrusted_networks = [\"10.0.0.0/8\", \"::1/128\"]\n"
    ))
    .unwrap();
    assert_eq!(c.trusted_networks.len(), 2);
}

#[test]
fn a_trusted_loopback_network_is_warned_about() {
    let warned = |nets: &str| {
        Config::parse(&format!("{MINIMAL}trusted_networks = [{nets}]\n"))
            .unwrap()
            .notes()
            .iter()
            .any(|n| n.contains("loopback"))
    };
    assert!(warned("\"10.0.0.0/8\", \"::1/128\""));
    assert!(warned("\"127.0.0.0/8\""));
    assert!(warned("\"0.0.0.0/0\""));
    assert!(!warned("\"10.0.0.0/8\", \"192.0.2.0/24\""));
}

#[test]
fn secret_files_must_not_be_readable_by_others() {
    use std::os::unix::fs::PermissionsExt;
    // Not under /tmp: a directory others may write is refused outright.
    let lab = crate::lab::Lab::new("t2fa-unit-cfg").unwrap();
    let dir = lab.dir.clone();
    let token = dir.join("token");
    std::fs::write(&token, "tok-file-91\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = format!(
        "account_sid = \"AC0123456789abcdef0123456789abcdef\"\nauth_token_file = \"{}\"\nservice_sid = \"VA0123456789abcdef0123456789abcdef\"\n",
        token.display()
    );
    let e = Config::parse(&text).unwrap_err();
    assert!(
        e.0.contains("readable by group or others") && e.0.contains("chmod 600"),
        "{e}"
    );
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        Config::parse(&text).unwrap().credentials.secret.expose(),
        "tok-file-91"
    );
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, &text).unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(Config::load(&cfg)
        .unwrap_err()
        .0
        .contains("readable by group or others"));
}

#[test]
fn registration_turned_on_by_a_policy_block_gets_the_same_notes() {
    let text = format!(
        "{MINIMAL}[phones]\ndirectory = \"/d\"\ncommand = \"/bin/q %u\"\n[[policy]]\nusers = [\"x\"]\nmax_attempts = 3\n[[policy]]\ngroups = [\"newhires\"]\nallow_register = true\n"
    );
    let notes = Config::parse(&text).unwrap().notes().join("\n");
    assert!(
        notes.contains("allow_register is on in policy[2]: anyone who knows the password"),
        "{notes}"
    );
    assert!(
        notes.contains("allow_register is on in policy[2] with a [phones] command"),
        "{notes}"
    );
    let off = Config::parse(&format!("{MINIMAL}[phones]\ndirectory = \"/d\"\n")).unwrap();
    assert!(!off.notes().join("\n").contains("allow_register"));
}

#[test]
fn language_locale_and_messages_are_read_and_checked() {
    let c = Config::parse(MINIMAL).unwrap();
    assert_eq!(
        (c.language, c.twilio_locale()),
        (crate::i18n::Language::En, Some("en".into()))
    );
    let c = Config::parse(&format!("{MINIMAL}language = \"pt-BR\"\n")).unwrap();
    assert_eq!(c.twilio_locale(), Some("pt-BR".into()));
    let c = Config::parse(&format!("{MINIMAL}language = \"de\"\nlocale = \"\"\n")).unwrap();
    assert_eq!(c.twilio_locale(), None);
    for (extra, why) in [
        ("language = \"xx\"", "language"),
        (
            "locale = \"de_DE\"",
            "locale: \"de_DE\" is not a Twilio locale",
        ),
        ("locale = \"d\"", "locale"),
        (
            "[messages]\nbusy = \"{x}\"",
            "messages.busy: unknown placeholder {x}",
        ),
        (
            "[[policy]]\nusers = [\"a\"]\nlocale = \"bad locale\"",
            "policy[1].locale",
        ),
        (
            "[[policy]]\nusers = [\"a\"]\nlanguage = \"klingon\"",
            "policy[1]",
        ),
    ] {
        let e = Config::parse(&format!("{MINIMAL}{extra}\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(why), "{extra}: {e}");
    }
}
