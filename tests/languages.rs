//! Languages (issue #13, parts 1 and 2) through the real libpam and the
//! simulator: what a user sees in each shipped language, what Twilio
//! received (`Locale`), answers typed in the login's language and in
//! English, the admin's `[messages]`, `language`/`locale` in `[[policy]]`,
//! config errors, and a `Locale` Twilio refuses.
//!
//! The expected texts are copied from po/*.po, not from the code: a
//! translation that does not reach the user fails here.

mod common;

use common::*;
use pam_twilio_2fa::pam_client::*;
use std::time::Duration;

/// A second account every Debian system has, with no number on file.
const OTHER: &str = "daemon";
const OTHER_PHONE: &str = "+12015550177";
const TWO: &str = "allowed_methods = [\"sms\", \"call\"]\n";

/// The `Locale` form field of each send Twilio received.
fn locales(s: &Setup) -> Vec<Option<String>> {
    s.sends()
        .iter()
        .map(|r| r.form.get("Locale").cloned())
        .collect()
}

fn some(l: &str) -> Option<String> {
    Some(l.to_string())
}

/// Past `retry_time = 1`: a new send is allowed (whole seconds; 1.5 s is
/// always at least one tick).
fn after_retry(a: Answer) -> Answer {
    Answer::After(Duration::from_millis(1500), Box::new(a))
}

/// One shipped language as a user meets it: the menu, the code prompt after
/// choosing the text message, the wrong-code error, and Twilio's Locale.
struct Shipped {
    language: &'static str,
    locale: &'static str,
    menu: &'static str,
    prompt: &'static str,
    wrong: &'static str,
}

const SHIPPED: [Shipped; 5] = [
    Shipped {
        language: "en",
        locale: "en",
        menu: "Choose how to receive your code:\n  1. text message\n  2. voice call\nEnter 1-2: ",
        prompt: "Code sent by text message to (XXX) XXX-2671. Enter code (r: new code, m: other method): ",
        wrong: "That code was not correct.",
    },
    Shipped {
        language: "de",
        locale: "de",
        menu: "Wählen Sie, wie Sie Ihren Code erhalten möchten:\n  1. SMS\n  2. Sprachanruf\nAuswahl 1-2: ",
        prompt: "Code per SMS an (XXX) XXX-2671 gesendet. Geben Sie den Code ein (n: neuer Code, a: andere Methode): ",
        wrong: "Dieser Code ist nicht korrekt.",
    },
    Shipped {
        language: "es",
        locale: "es",
        menu: "Elija cómo desea recibir su código:\n  1. SMS\n  2. llamada de voz\nIntroduzca 1-2: ",
        prompt: "Código enviado por SMS a (XXX) XXX-2671. Introduzca el código (n: nuevo código, o: otro método): ",
        wrong: "Ese código no es correcto.",
    },
    Shipped {
        language: "fr",
        locale: "fr",
        menu: "Choisissez comment recevoir votre code :\n  1. SMS\n  2. appel vocal\nSaisissez 1-2 : ",
        prompt: "Code envoyé par SMS au (XXX) XXX-2671. Saisissez le code (n : nouveau code, a : autre méthode) : ",
        wrong: "Ce code est incorrect.",
    },
    Shipped {
        language: "pt_BR",
        locale: "pt-BR",
        menu: "Escolha como receber o seu código:\n  1. SMS\n  2. ligação de voz\nDigite 1-2: ",
        prompt: "Código enviado por SMS para (XXX) XXX-2671. Digite o código (n: novo código, o: outro método): ",
        wrong: "Esse código não está correto.",
    },
];

#[test]
fn every_shipped_language_logs_in_with_its_own_texts_and_locale() {
    for l in &SHIPPED {
        let s = Setup::new(&format!("language = \"{}\"\n{TWO}", l.language));
        let r = s.login(vec![text("1"), Answer::WrongCode, Answer::Code]);
        r.assert_rc(PAM_SUCCESS);
        assert_eq!(
            r.prompts(),
            vec![l.menu, l.prompt, l.prompt],
            "{}: {:#?}",
            l.language,
            r.shown
        );
        assert_eq!(r.errors(), vec![l.wrong], "{}: {:#?}", l.language, r.shown);
        assert_eq!(locales(&s), vec![some(l.locale)], "{}", l.language);
        let d = s.sim.deliveries();
        assert_eq!(d.len(), 1, "{}", l.language);
        assert_eq!(d[0].locale.as_deref(), Some(l.locale), "{}", l.language);
        assert_eq!(d[0].channel, "sms");
    }
}

#[test]
fn the_call_is_named_in_the_language_and_carries_its_locale() {
    let s = Setup::new(&format!("language = \"fr\"\n{TWO}"));
    let r = s.login(vec![text("2"), Answer::Code]);
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(
        r.prompts()[1],
        "Code envoyé par appel vocal au (XXX) XXX-2671. Saisissez le code (n : nouveau code, a : autre méthode) : "
    );
    assert_eq!(
        s.sends()[0].form.get("Channel").map(String::as_str),
        Some("call")
    );
    assert_eq!(locales(&s), vec![some("fr")]);
}

#[test]
fn the_lockout_takes_the_right_plural_form() {
    for (timeout, want) in [
        (
            60,
            "Trop de tentatives infructueuses. Réessayez dans 1 minute.",
        ),
        (
            120,
            "Trop de tentatives infructueuses. Réessayez dans 2 minutes.",
        ),
    ] {
        let s = Setup::sms(&format!(
            "language = \"fr\"\nmax_attempts = 1\nmax_attempts_timeout = {timeout}\n"
        ));
        let r = s.login(vec![Answer::WrongCode, Answer::Code]);
        r.assert_rc(PAM_MAXTRIES);
        assert_eq!(
            r.errors().last().map(String::as_str),
            Some(want),
            "{:#?}",
            r.shown
        );
        // The next login, still locked out, says the same before any send.
        let r = s.login(vec![Answer::Code]);
        assert_ne!(r.rc, PAM_SUCCESS);
        assert_eq!(r.errors(), vec![want], "{:#?}", r.shown);
        assert_eq!(s.sends().len(), 1);
    }
}

#[test]
fn the_resend_wait_in_german_counts_seconds_in_the_plural() {
    let s = Setup::sms("language = \"de\"\nretry_time = 30\n");
    let r = s.login(vec![text("n"), Answer::Code]);
    r.assert_rc(PAM_SUCCESS);
    let errors = r.errors();
    assert_eq!(errors.len(), 1, "{:#?}", r.shown);
    let wait = &errors[0];
    let seconds: u64 = wait
        .strip_prefix("Sie können in ")
        .and_then(|w| w.strip_suffix(" Sekunden einen neuen Code anfordern."))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{wait:?}"));
    assert!((2..=30).contains(&seconds), "{wait:?}");
    assert_eq!(s.sends().len(), 1);
}

#[test]
fn a_remembered_login_says_so_in_the_plural_form_of_its_language() {
    for (remember, want) in [
        (
            60,
            "Zwei-Faktor-Authentifizierung übersprungen: Sie haben sie von hier aus innerhalb der letzten 1 Minute bestanden.",
        ),
        (
            120,
            "Zwei-Faktor-Authentifizierung übersprungen: Sie haben sie von hier aus innerhalb der letzten 2 Minuten bestanden.",
        ),
    ] {
        let s = Setup::sms(&format!("language = \"de\"\nremember = {remember}\n"));
        s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);
        let r = s.login(vec![]);
        r.assert_rc(PAM_SUCCESS);
        assert_eq!(r.of(Style::Info), vec![want], "{:#?}", r.shown);
        assert_eq!(s.sends().len(), 1);
    }
}

#[test]
fn the_menu_takes_method_names_in_the_language_and_in_english() {
    for (language, answers, want_error, channel) in [
        (
            "de",
            ["x", "Sprachanruf"],
            "Geben Sie bitte eine Zahl von 1 bis 2 oder den Namen einer Methode ein.",
            "call",
        ),
        (
            "pt_BR",
            ["x", "LIGAÇÃO DE VOZ"],
            "Digite um número de 1 a 2 ou o nome de um método.",
            "call",
        ),
        (
            "fr",
            ["x", "call"],
            "Saisissez un nombre de 1 à 2 ou le nom d'une méthode.",
            "call",
        ),
    ] {
        let s = Setup::new(&format!("language = \"{language}\"\n{TWO}"));
        let r = s.login(vec![text(answers[0]), text(answers[1]), Answer::Code]);
        r.assert_rc(PAM_SUCCESS);
        assert_eq!(r.errors(), vec![want_error], "{language}: {:#?}", r.shown);
        assert_eq!(
            s.sends()[0].form.get("Channel").map(String::as_str),
            Some(channel)
        );
    }
}

#[test]
fn an_expired_code_names_the_german_key_and_neu_gets_a_new_one() {
    let s = Setup::sms("language = \"de\"\n");
    // The check answers 20404: the verification is gone.
    s.sim
        .inject(pam_twilio_2fa::simulator::Fault::Delay(Duration::ZERO), 1);
    s.sim
        .inject(pam_twilio_2fa::simulator::Fault::Twilio(404, 20404), 1);
    let r = s.login(vec![Answer::Code, text("neu"), Answer::Code]);
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(
        r.errors(),
        vec!["Dieser Code ist abgelaufen. Geben Sie n ein, um einen neuen Code zu erhalten."]
    );
    assert_eq!(locales(&s), vec![some("de"); 2]);
}

#[test]
fn german_answers_and_english_ones_work_at_the_code_prompt() {
    let s = Setup::new(&format!("language = \"de\"\nretry_time = 1\n{TWO}"));
    let r = s.login(vec![
        text("1"),
        // German "a" (andere Methode): the menu again; the call.
        after_retry(text("a")),
        text("2"),
        // English "m" still works: the menu; the text message.
        after_retry(text("m")),
        text("1"),
        // German "n" (neuer Code): a new code by the same method.
        after_retry(text("n")),
        Answer::Code,
    ]);
    r.assert_rc(PAM_SUCCESS);
    let menu = SHIPPED[1].menu;
    let sms = SHIPPED[1].prompt;
    let call = "Code per Sprachanruf an (XXX) XXX-2671 gesendet. Geben Sie den Code ein (n: neuer Code, a: andere Methode): ";
    assert_eq!(
        r.prompts(),
        vec![menu, sms, menu, call, menu, sms, sms],
        "{:#?}",
        r.shown
    );
    assert!(r.errors().is_empty(), "{:#?}", r.shown);
    let d = s.sim.deliveries();
    assert_eq!(
        d.iter().map(|d| d.channel.as_str()).collect::<Vec<_>>(),
        vec!["sms", "call", "sms", "sms"]
    );
    assert_eq!(locales(&s), vec![some("de"); 4]);
    // Each new send cancelled the one before, as a resend does.
    for old in &d[..3] {
        assert!(
            s.lab
                .events()
                .contains(&format!("sid={} status=canceled", old.sid)),
            "{}",
            s.lab.events()
        );
    }
}

#[test]
fn german_words_are_answers_too_and_other_letters_are_not() {
    let s = Setup::new(&format!("language = \"de\"\nretry_time = 1\n{TWO}"));
    // "x" is neither a code nor an answer; "methode" is the word for "a".
    let r = s.login(vec![
        text("1"),
        text("x"),
        after_retry(text("Methode")),
        text("1"),
        Answer::Code,
    ]);
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(
        r.errors(),
        vec!["Der Code muss aus 4 bis 10 Ziffern bestehen."]
    );
    assert_eq!(s.sends().len(), 2);
}

#[test]
fn w_at_the_german_code_prompt_changes_the_number() {
    let s = Setup::new("language = \"de\"\nallowed_methods = [\"sms\"]\nallow_change = true\n");
    let r = s.login(vec![
        text("w"),
        Answer::Code,
        text("(201) 555-0188"),
        Answer::Code,
    ]);
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(
        r.prompts(),
        vec![
            "Code per SMS an (XXX) XXX-2671 gesendet. Geben Sie den Code ein (n: neuer Code, w: Nummer wechseln): ",
            "Code per SMS an (XXX) XXX-2671 gesendet. Geben Sie den Code ein (n: neuer Code): ",
            "Geben Sie Ihre neue Mobilfunknummer ein: ",
            "Code per SMS an (XXX) XXX-0188 gesendet. Geben Sie den Code ein (n: neuer Code): ",
        ],
        "{:#?}",
        r.shown
    );
    assert_eq!(
        r.of(Style::Info),
        vec!["Nach Eingabe des richtigen Codes werden Sie nach Ihrer neuen Nummer gefragt."]
    );
    assert_eq!(
        std::fs::read_to_string(s.lab.phones.join(USER)).unwrap(),
        "+12015550188\n"
    );
    assert_eq!(locales(&s), vec![some("de"); 2]);
}

#[test]
fn skipping_registration_in_german_or_english() {
    let s = Setup::new(
        "language = \"de\"\nallowed_methods = [\"sms\"]\nallow_register = true\nregister_optional = true\n",
    );
    // Skipping answers PAM_IGNORE: the next module (pam_permit) decides.
    s.stack("auth required MODULE\nauth required pam_permit.so\n");
    for word in ["ueberspringen", "Ueberspringen", "skip"] {
        let r = s.login_as(OTHER, None, 0, vec![text(word)]);
        r.assert_rc(PAM_SUCCESS);
        assert_eq!(
            r.prompts(),
            vec!["Geben Sie Ihre Mobilfunknummer für die Zwei-Faktor-Authentifizierung ein (oder geben Sie ueberspringen ein): "],
            "{word}: {:#?}",
            r.shown
        );
    }
    assert_eq!(
        s.lab.events().matches("event=registration_skipped").count(),
        3,
        "{}",
        s.lab.events()
    );
    assert!(s.sim.received().is_empty());
    assert!(!s.lab.phones.join(OTHER).exists());
    // Without the pam_permit after it, a skip is not a success.
    s.stack("auth required MODULE\n");
    let r = s.login_as(OTHER, None, 0, vec![text("ueberspringen")]);
    assert_ne!(r.rc, PAM_SUCCESS);
}

const HELP_DESK: &str = "[messages]\n\
    no_phone = \"No phone on file. Call the ACME help desk at 555-0100.\"\n\
    contact_admin = \"Call the ACME help desk at 555-0100.\"\n\
    [messages.de]\n\
    no_phone = \"Keine Nummer hinterlegt. Rufen Sie den ACME-Helpdesk an: 555-0100.\"\n";

#[test]
fn an_override_names_the_help_desk_and_the_language_table_wins() {
    for (language, want) in [
        (
            "en",
            "No phone on file. Call the ACME help desk at 555-0100.",
        ),
        // [messages.de] wins over [messages] for a German login...
        (
            "de",
            "Keine Nummer hinterlegt. Rufen Sie den ACME-Helpdesk an: 555-0100.",
        ),
        // ...and [messages] applies to every language without its own.
        (
            "fr",
            "No phone on file. Call the ACME help desk at 555-0100.",
        ),
    ] {
        let s = Setup::sms(&format!("language = \"{language}\"\n{HELP_DESK}"));
        let r = s.login_as(OTHER, None, 0, vec![]);
        r.assert_rc(PAM_AUTH_ERR);
        assert_eq!(r.errors(), vec![want], "{language}: {:#?}", r.shown);
    }
}

#[test]
fn a_policy_language_brings_that_languages_overrides() {
    let s = Setup::sms(&format!(
        "{HELP_DESK}[[policy]]\nusers = [\"{OTHER}\"]\nlanguage = \"de\"\n"
    ));
    let r = s.login_as(OTHER, None, 0, vec![]);
    r.assert_rc(PAM_AUTH_ERR);
    assert_eq!(
        r.errors(),
        vec!["Keine Nummer hinterlegt. Rufen Sie den ACME-Helpdesk an: 555-0100."]
    );
}

#[test]
fn an_override_of_contact_admin_follows_the_translated_refusal() {
    // A number on file from a country not allowed: the refusal in the
    // login's language, then the admin's help-desk line.
    for (language, want) in [
        (
            "en",
            "Numbers from GB are not allowed. Call the ACME help desk at 555-0100.",
        ),
        (
            "de",
            "Nummern aus GB sind nicht zulässig. Call the ACME help desk at 555-0100.",
        ),
    ] {
        let s = Setup::sms(&format!("language = \"{language}\"\n{HELP_DESK}"));
        s.lab.set_phone(USER, "+442079460018").unwrap();
        let r = s.login(vec![]);
        r.assert_rc(PAM_AUTH_ERR);
        assert_eq!(r.errors(), vec![want], "{language}: {:#?}", r.shown);
        assert!(s.sends().is_empty());
    }
}

#[test]
fn an_override_of_a_plural_message_takes_both_forms() {
    let s = Setup::sms(
        "language = \"de\"\nmax_attempts = 1\nmax_attempts_timeout = 120\n\
         [messages.de]\nlocked_out = [\"Gesperrt für {minutes} Minute.\", \"Gesperrt für {minutes} Minuten.\"]\n",
    );
    let r = s.login(vec![Answer::WrongCode]);
    r.assert_rc(PAM_MAXTRIES);
    assert_eq!(
        r.errors().last().map(String::as_str),
        Some("Gesperrt für 2 Minuten.")
    );
}

/// A group of its own, removed when dropped.
struct TestGroup(String);

impl TestGroup {
    fn new(tag: &str) -> TestGroup {
        let name = format!("t2fa{tag}{}", std::process::id());
        let _ = std::process::Command::new("groupdel").arg(&name).output();
        let ok = std::process::Command::new("groupadd")
            .arg(&name)
            .status()
            .unwrap()
            .success();
        assert!(ok, "groupadd {name}");
        TestGroup(name)
    }
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        let _ = std::process::Command::new("groupdel").arg(&self.0).output();
    }
}

#[test]
fn a_group_policy_makes_its_members_logins_french() {
    let group = TestGroup::new("grp");
    let member = TestUser::new("fr");
    let ok = std::process::Command::new("usermod")
        .args(["-a", "-G", &group.0, &member.name])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let s = Setup::sms(&format!(
        "[[policy]]\ngroups = [\"{}\"]\nlanguage = \"fr\"\n",
        group.0
    ));
    s.lab.set_phone(&member.name, OTHER_PHONE).unwrap();
    let r = s.login_as(&member.name, None, 0, vec![Answer::Code]);
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(
        r.prompts(),
        vec!["Code envoyé par SMS au (XXX) XXX-0177. Saisissez le code (n : nouveau code) : "],
        "{:#?}",
        r.shown
    );
    // root is not a member: English, Locale en.
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(
        r.prompts(),
        vec!["Code sent by text message to (XXX) XXX-2671. Enter code (r: new code): "]
    );
    assert_eq!(locales(&s), vec![some("fr"), some("en")]);
    let (ok, out, err) = s.cli(&["policy", &member.name]);
    assert!(ok, "{err}");
    assert!(out.contains("language = \"fr\"  # policy[1]"), "{out}");
    // The locale key itself is unset: it follows the language.
    assert!(
        out.contains("locale = \"fr\"  (from language)  # policy[1]"),
        "{out}"
    );
    let (ok, out, err) = s.cli(&["policy", "root"]);
    assert!(ok, "{err}");
    assert!(out.contains("language = \"en\"  # default"), "{out}");
}

#[test]
fn a_user_policy_sets_the_locale_and_leaves_the_prompt_alone() {
    let s = Setup::sms("language = \"de\"\n[[policy]]\nusers = [\"root\"]\nlocale = \"es\"\n");
    s.lab.set_phone(OTHER, OTHER_PHONE).unwrap();
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(
        r.prompts(),
        vec!["Code per SMS an (XXX) XXX-2671 gesendet. Geben Sie den Code ein (n: neuer Code): "]
    );
    // Another user: the language's own Locale.
    s.login_as(OTHER, None, 0, vec![Answer::Code])
        .assert_rc(PAM_SUCCESS);
    assert_eq!(locales(&s), vec![some("es"), some("de")]);
    let (ok, out, err) = s.cli(&["policy", "root"]);
    assert!(ok, "{err}");
    assert!(out.contains("language = \"de\"  # top level"), "{out}");
    assert!(out.contains("locale = \"es\"  # policy[1]"), "{out}");
}

#[test]
fn an_empty_locale_sends_none() {
    let s = Setup::sms("language = \"fr\"\nlocale = \"\"\n");
    s.login(vec![Answer::Code]).assert_rc(PAM_SUCCESS);
    assert_eq!(locales(&s), vec![None]);
}

#[test]
fn a_bad_language_or_message_is_refused_with_a_clear_line_and_logins_fail_closed() {
    for (extra, want) in [
        (
            "[messages]\nno_such_id = \"x\"\n",
            "messages.no_such_id: there is no message with this id",
        ),
        (
            "[messages]\nlocked_out = \"Locked for {hours} hours ({minutes} min).\"\n",
            "messages.locked_out: unknown placeholder {hours}",
        ),
        (
            "[messages.de]\nmenu_prompt = \"Wählen Sie: \"\n",
            "messages.de.menu_prompt: must contain the placeholder {count}",
        ),
        (
            "[messages]\nno_phone = \"\\u001b[2JNo phone.\"\n",
            "messages.no_phone: contains the control character",
        ),
        (
            "[messages]\nwrong_code = \"Nope.\\nTry again.\"\n",
            "messages.wrong_code: contains the control character",
        ),
        // Right-to-left override: the text would read differently on
        // the terminal from what it is.
        (
            "[messages]\nwrong_code = \"\\u202Eedoc ruoy\"\n",
            "messages.wrong_code: contains the control character",
        ),
        (
            "[messages]\nkey_new_code = \"x\"\n",
            "messages.key_new_code: the words users type cannot be overridden",
        ),
        (
            "language = \"xx\"\n",
            "language: \"xx\" is not a language this module ships; use one of en, de, es, fr, pt_BR",
        ),
        (
            "[[policy]]\nusers = [\"root\"]\nlanguage = \"klingon\"\n",
            "policy[1].language: \"klingon\" is not a language this module ships",
        ),
        (
            "[[policy]]\nusers = [\"root\"]\nlocale = 5\n",
            "policy[1].locale: invalid type",
        ),
        (
            "locale = \"German\"\n",
            "locale: \"German\" is not a Twilio locale",
        ),
    ] {
        let s = Setup::sms(extra);
        let config = s.lab.config.to_str().unwrap();
        let (ok, _, err) = twilio_2fa(&["check-config", config]);
        assert!(!ok, "{extra}: accepted");
        assert!(err.contains(want), "{extra}: {err}");
        let r = s.login(vec![Answer::Code]);
        r.assert_rc(PAM_SERVICE_ERR);
        assert_eq!(
            r.errors(),
            vec!["Two-factor authentication is not set up correctly on this system. Contact your administrator."],
            "{extra}: {:#?}",
            r.shown
        );
        assert!(s.sim.received().is_empty(), "{extra}");
    }
}

#[test]
fn a_locale_twilio_refuses_costs_one_retry_and_one_code() {
    let s = Setup::sms("locale = \"xx-YY\"\n");
    let r = s.login(vec![Answer::Code]);
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(locales(&s), vec![some("xx-YY"), None]);
    let d = s.sim.deliveries();
    assert_eq!(d.len(), 1, "only one code was delivered: {d:?}");
    assert_eq!(d[0].locale, None);
    let log = s.lab.events();
    assert!(
        log.contains("level=warning msg=\"Twilio refused Locale \\\"xx-YY\\\""),
        "{log}"
    );
    assert_eq!(log.matches("event=verification_sent").count(), 1, "{log}");
    assert!(!log.contains(&d[0].code), "{log}");
    // The user saw an ordinary prompt, and no error.
    assert!(r.errors().is_empty(), "{:#?}", r.shown);
}

#[test]
fn a_refused_locale_is_retried_on_a_resend_too() {
    let s = Setup::sms("language = \"de\"\nlocale = \"xx-YY\"\nretry_time = 1\n");
    let r = s.login(vec![after_retry(text("n")), Answer::Code]);
    r.assert_rc(PAM_SUCCESS);
    assert_eq!(locales(&s), vec![some("xx-YY"), None, some("xx-YY"), None]);
    assert_eq!(s.sim.deliveries().len(), 2);
    // The prompt stays German: only Twilio's text falls back.
    assert_eq!(
        r.prompts()[0],
        SHIPPED[1].prompt.replace(", a: andere Methode", "")
    );
}

/// The ids of po/twilio-2fa.pot, in order.
fn template_ids() -> Vec<String> {
    let pot =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/po/twilio-2fa.pot")).unwrap();
    pot.lines()
        .filter_map(|l| l.strip_prefix("msgctxt \""))
        .map(|l| l.trim_end_matches('"').to_string())
        .collect()
}

/// The ids `twilio-2fa messages` lists: the lines that are not indented.
fn listed_ids(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| !l.starts_with(' ') && !l.is_empty())
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

#[test]
fn messages_lists_every_id_of_the_template() {
    let (ok, out, err) = twilio_2fa(&["messages"]);
    assert!(ok, "{err}");
    let ids = template_ids();
    assert!(ids.len() > 50, "{ids:?}");
    assert_eq!(listed_ids(&out), ids);
    assert!(
        out.contains("locked_out  {minutes}\n  en (singular): \"Too many failed attempts. Try again in {minutes} minute.\"\n  en (plural): \"Too many failed attempts. Try again in {minutes} minutes.\"\n"),
        "{out}"
    );
    assert!(
        out.contains("key_new_code  (typed by users; not overridable)\n  en: \"r\"\n"),
        "{out}"
    );
    let (ok, _, err) = twilio_2fa(&["messages", "--language", "xx"]);
    assert!(!ok);
    assert!(err.contains("--language"), "{err}");
}

#[test]
fn messages_in_german_with_a_config_marks_the_overrides() {
    let s = Setup::sms(HELP_DESK);
    let (ok, out, err) = s.cli(&["messages", "--language", "de"]);
    assert!(ok, "{err}");
    assert_eq!(listed_ids(&out), template_ids());
    assert!(
        out.contains("no_phone  [overridden]\n  en: \"No phone number is registered for two-factor authentication. Contact your administrator.\"\n  de: \"Keine Nummer hinterlegt. Rufen Sie den ACME-Helpdesk an: 555-0100.\"\n"),
        "{out}"
    );
    // A top-level override applies to German too.
    assert!(
        out.contains("contact_admin  [overridden]\n  en: \"Contact your administrator.\"\n  de: \"Call the ACME help desk at 555-0100.\"\n"),
        "{out}"
    );
    assert!(
        out.contains("wrong_code\n  en: \"That code was not correct.\"\n  de: \"Dieser Code ist nicht korrekt.\"\n"),
        "{out}"
    );
    assert_eq!(out.matches("[overridden]").count(), 2, "{out}");
}
