use super::*;

fn table(text: &str) -> toml::Table {
    text.parse().unwrap()
}

/// What build.rs read from each catalog's header.
fn header_plural_forms(lang: Language) -> Option<&'static str> {
    match lang {
        Language::En => shipped::EN_PLURAL_FORMS,
        Language::De => shipped::DE_PLURAL_FORMS,
        Language::Es => shipped::ES_PLURAL_FORMS,
        Language::Fr => shipped::FR_PLURAL_FORMS,
        Language::PtBr => shipped::PT_BR_PLURAL_FORMS,
    }
}

#[test]
fn every_shipped_catalog_is_complete_and_keeps_its_placeholders() {
    for lang in Language::ALL {
        let cat = Catalog::of(lang);
        if lang != Language::En {
            assert_eq!(
                header_plural_forms(lang),
                Some(lang.plural_forms()),
                "{lang}"
            );
        }
        // Sorted (the lookup is a binary search) and every id known.
        let ids: Vec<&str> = cat.0.iter().map(Catalog::id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{lang}: not sorted");
        for id in ids {
            assert!(
                Msg::from_id(id).is_some(),
                "{lang}: unknown message id {id}"
            );
        }
        for &msg in Msg::ALL {
            let forms = cat
                .get(msg)
                .unwrap_or_else(|| panic!("{lang}: {} is not translated", msg.id()));
            let want = if msg.kind() == Kind::Plural {
                lang.nplurals()
            } else {
                1
            };
            assert_eq!(forms.len(), want, "{lang}: {}", msg.id());
            for &span in forms {
                let text = shipped::text(span);
                check_text(&format!("{lang}.{}", msg.id()), msg, text).unwrap();
            }
        }
    }
}

#[test]
fn prompts_end_the_way_their_english_does() {
    for lang in Language::ALL {
        let t = Texts::shipped(lang);
        for &msg in Msg::ALL {
            let en = Texts::english().text(msg);
            if en.ends_with(": ") {
                assert!(t.text(msg).ends_with(": "), "{lang}: {}", msg.id());
            }
        }
    }
}

#[test]
fn answer_words_are_easy_to_type_and_never_mean_two_things() {
    let actions = [
        Answer::NewCode,
        Answer::OtherMethod,
        Answer::Change,
        Answer::Skip,
    ];
    for lang in Language::ALL {
        let t = Texts::shipped(lang);
        let mut seen: Vec<(String, Answer)> = Vec::new();
        for a in actions {
            for &w in a.words() {
                for l in [lang, Language::En] {
                    let word = Texts::shipped(l).text(w);
                    let one_letter = w.id().starts_with("key_");
                    assert!(
                        word.bytes().all(|b| b.is_ascii_lowercase())
                            && (!one_letter || word.len() == 1)
                            && !word.is_empty(),
                        "{l}: {} = {word:?}",
                        w.id()
                    );
                    if let Some((_, other)) = seen.iter().find(|(s, o)| *s == word && *o != a) {
                        panic!("{lang}: {word:?} means both {a:?} and {other:?}");
                    }
                    seen.push((word, a));
                }
                assert!(t.means(&t.text(w), a));
                assert!(t.means(&Texts::english().text(w).to_uppercase(), a));
            }
        }
    }
}

#[test]
fn plural_forms_follow_each_language() {
    let en = Texts::english();
    assert_eq!(
        en.count(Msg::ResendWait, "seconds", 1),
        "You can request a new code in 1 second."
    );
    assert_eq!(
        en.count(Msg::ResendWait, "seconds", 0),
        "You can request a new code in 0 seconds."
    );
    for lang in Language::ALL {
        let t = Texts::shipped(lang);
        let one = t.count(Msg::LockedOut, "minutes", 1);
        let two = t.count(Msg::LockedOut, "minutes", 2);
        assert!(
            one.contains('1') && two.contains('2'),
            "{lang}: {one} / {two}"
        );
        assert_ne!(one.replace('1', "2"), two, "{lang}: no plural form");
    }
    // French and Portuguese count 0 as singular, English and German do not.
    assert_eq!(Language::Fr.plural_index(0), 0);
    assert_eq!(Language::PtBr.plural_index(0), 0);
    assert_eq!(Language::De.plural_index(0), 1);
}

#[test]
fn the_prompt_keeps_the_masked_number_and_the_typed_keys() {
    for lang in Language::ALL {
        let t = Texts::shipped(lang);
        let choices = t.fmt(Msg::ChoiceNewCode, &[("key", &t.key(Answer::NewCode))]);
        let p = t.fmt(
            Msg::CodePromptSent,
            &[
                ("method", &t.text(Msg::MethodSms)),
                ("phone", "(XXX) XXX-2671"),
                ("choices", &choices),
            ],
        );
        assert!(p.contains("(XXX) XXX-2671") && p.contains(&choices), "{p}");
        assert!(choices.starts_with(&t.key(Answer::NewCode)), "{choices}");
    }
}

#[test]
fn languages_parse_in_their_usual_spellings() {
    assert_eq!(Language::parse("pt-BR"), Some(Language::PtBr));
    assert_eq!(Language::parse("PT_br"), Some(Language::PtBr));
    assert_eq!(Language::parse("de"), Some(Language::De));
    assert_eq!(Language::parse("pt"), None);
    assert_eq!(Language::parse("en_US"), None);
    assert_eq!(Language::PtBr.twilio_locale(), "pt-BR");
}

#[test]
fn overrides_apply_per_language_and_else_to_all() {
    let o = Overrides::from_table(&table(
        r#"
        contact_admin = "Call the help desk on 555-0100."
        [de]
        contact_admin = "Rufen Sie den Helpdesk unter 555-0100 an."
        locked_out = ["Gesperrt: {minutes} Minute.", "Gesperrt: {minutes} Minuten."]
        "#,
    ))
    .unwrap();
    let en = Texts::new(Language::En, &o);
    let de = Texts::new(Language::De, &o);
    let fr = Texts::new(Language::Fr, &o);
    assert_eq!(
        en.text(Msg::ContactAdmin),
        "Call the help desk on 555-0100."
    );
    assert_eq!(
        fr.text(Msg::ContactAdmin),
        "Call the help desk on 555-0100."
    );
    assert_eq!(
        de.text(Msg::ContactAdmin),
        "Rufen Sie den Helpdesk unter 555-0100 an."
    );
    assert_eq!(
        de.count(Msg::LockedOut, "minutes", 3),
        "Gesperrt: 3 Minuten."
    );
    assert!(o.is_overridden(Language::Fr, Msg::ContactAdmin));
    assert!(!o.is_overridden(Language::Fr, Msg::LockedOut));
}

#[test]
fn bad_overrides_are_refused_with_the_key_and_the_reason() {
    for (text, why) in [
        (
            r#"no_such_id = "x""#,
            "messages.no_such_id: there is no message with this id",
        ),
        (
            r#"[xx]
            busy = "x""#,
            "a language table must be one of",
        ),
        (
            r#"locked_out = "Locked for {minutes} {hours}.""#,
            "unknown placeholder {hours}",
        ),
        (
            r#"locked_out = "Locked, try later.""#,
            "must contain the placeholder {minutes}",
        ),
        (
            r#"busy = "Busy {user}""#,
            "unknown placeholder {user}; this message has none",
        ),
        ("busy = \"Busy\\u001b[2J\"", "control character"),
        ("busy = \"two\\nlines\"", "control character"),
        ("busy = \"\\u202Eysub\"", "control character"),
        ("busy = \"\\u2067Busy\\u2069\"", "control character"),
        (r#"busy = "a { b""#, "a { without its }"),
        (r#"busy = """#, "must not be empty"),
        (r#"busy = 3"#, "must be a string"),
        (r#"key_new_code = "x""#, "cannot be overridden"),
        (r#"locked_out = ["{minutes}"]"#, "has 2 plural forms, not 1"),
        (
            r#"[de]
            locked_out = ["{minutes}", "{minutes}", "{minutes}"]"#,
            "de has 2 plural forms, not 3",
        ),
    ] {
        let err = Overrides::from_table(&table(text)).unwrap_err();
        assert!(err.contains(why), "{text}: {err}");
    }
}

#[test]
fn filling_leaves_unknown_braces_alone() {
    assert_eq!(fill("{a} and {b}", &[("a", "1")]), "1 and {b}");
    assert_eq!(fill("{{a}", &[("a", "1")]), "{1");
}
