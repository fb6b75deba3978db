//! `twilio-2fa messages`: every message id an admin may override in
//! `[messages]`, with its placeholders and its text.

use crate::cli::MessagesArgs;
use pam_twilio_2fa::config::Config;
use pam_twilio_2fa::i18n::{Kind, Language, Msg, Texts};
use std::io::Write;

pub fn run(a: MessagesArgs) -> Result<(), String> {
    let language = match &a.language {
        Some(l) => Language::parse_or_explain(l).map_err(|e| format!("--language: {e}"))?,
        None => Language::En,
    };
    // With a config: the texts its users see, overrides included.
    let cfg = match &a.config {
        Some(path) => Some(Config::load(path).map_err(|e| e.to_string())?),
        None => None,
    };
    let english = Texts::english();
    let chosen = match &cfg {
        Some(c) => Texts::new(language, &c.messages),
        None => Texts::shipped(language),
    };
    let mut out = String::new();
    for &msg in Msg::ALL {
        let placeholders: Vec<String> = msg
            .placeholders()
            .iter()
            .map(|p| format!("{{{p}}}"))
            .collect();
        let mut head = msg.id().to_string();
        if msg.kind() == Kind::Answer {
            head.push_str("  (typed by users; not overridable)");
        } else if !placeholders.is_empty() {
            head = format!("{head}  {}", placeholders.join(" "));
        }
        let overridden = cfg
            .as_ref()
            .is_some_and(|c| c.messages.is_overridden(language, msg));
        if overridden {
            head.push_str("  [overridden]");
        }
        out.push_str(&head);
        out.push('\n');
        print_forms(&mut out, Language::En, english.raw(msg));
        if language != Language::En || overridden {
            print_forms(&mut out, language, chosen.raw(msg));
        }
    }
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::stdout().write_all(out.as_bytes());
    Ok(())
}

/// One line per form: a plural message has the singular, then the plural.
fn print_forms(out: &mut String, lang: Language, forms: Vec<&str>) {
    let label = |i: usize| match (forms.len(), i) {
        (1, _) => String::new(),
        (_, 0) => " (singular)".into(),
        _ => " (plural)".into(),
    };
    for (i, text) in forms.iter().enumerate() {
        out.push_str(&format!("  {lang}{}: {text:?}\n", label(i)));
    }
}
