//! `twilio-2fa demo`: a complete login as a person sees it, against the
//! built-in simulator, through the real libpam, with no Twilio account and
//! no root-owned paths.

use crate::cli::DemoArgs;
use pam_twilio_2fa::i18n::{Answer, Language, Texts};
use pam_twilio_2fa::lab::{find_module, Lab};
use pam_twilio_2fa::pam_client::{code_name, Style, Transaction, PAM_SUCCESS};
use pam_twilio_2fa::simulator::{SimConfig, Simulator};
use std::io::{BufRead, Write};

const SERVICE: &str = "twilio-2fa-demo";
const DEMO_PHONE: &str = "+12015552671";

pub fn run(a: DemoArgs) -> Result<(), String> {
    let language = match &a.language {
        Some(l) => Language::parse_or_explain(l).map_err(|e| format!("--language: {e}"))?,
        None => Language::En,
    };
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let module = match a.module {
        Some(m) => m,
        None => find_module(&exe).ok_or(
            "cannot find libpam_twilio_2fa.so next to this program; build it with `cargo build --release` or pass --module PATH",
        )?,
    };
    let user = current_user().ok_or("cannot tell who you are (getpwuid failed)")?;

    let sim = Simulator::start(
        "127.0.0.1:0",
        SimConfig {
            print: true,
            ..SimConfig::default()
        },
    )
    .map_err(|e| format!("cannot start the simulator: {e}"))?;
    let lab = Lab::new("twilio-2fa-demo").map_err(|e| format!("cannot make a temp dir: {e}"))?;
    let setup = || -> std::io::Result<()> {
        let settings = format!(
            "service_name = \"{{host}} login\"\nretry_time = 20\nlanguage = \"{}\"\n",
            language.code()
        );
        lab.write_config(&sim, &settings)?;
        lab.set_phone(&user, DEMO_PHONE)?;
        lab.write_service(SERVICE, &module, "")
    };
    setup().map_err(|e| format!("cannot write the demo files: {e}"))?;

    println!("pam_twilio_2fa demo: a real PAM login against the built-in Twilio Verify simulator.");
    println!(
        "  simulator  {} (stands in for Twilio; codes appear here as a phone would show them)",
        sim.url()
    );
    println!("  module     {}", module.display());
    println!("  PAM stack  {}", lab.confdir.join(SERVICE).display());
    println!("  user       {user}, phone on file (XXX) XXX-2671");
    println!("  language   {language} (prompts, and the Locale sent to Twilio)");
    let t = Texts::shipped(language);
    println!(
        "Type the code you receive. The code prompt names its other choices: `{}` a new code \
         (after 20 seconds), `{}` another method, `{}` change the number after this code.\n",
        t.key(Answer::NewCode),
        t.key(Answer::OtherMethod),
        t.key(Answer::Change)
    );

    let stdin = std::io::stdin();
    let responder = Box::new(move |style: Style, text: &str| -> Option<String> {
        match style {
            Style::Error => {
                println!("{text}");
                Some(String::new())
            }
            Style::Info => {
                println!("{text}");
                Some(String::new())
            }
            Style::EchoOn | Style::EchoOff => {
                print!("{text}");
                let _ = std::io::stdout().flush();
                let _echo = (style == Style::EchoOff).then(EchoOff::new);
                let mut line = String::new();
                let n = stdin.lock().read_line(&mut line).ok()?;
                if style == Style::EchoOff && is_tty() {
                    println!();
                }
                (n > 0).then(|| line.trim_end_matches(['\r', '\n']).to_string())
            }
        }
    });
    let mut tx = Transaction::start(SERVICE, &user, Some(&lab.confdir), responder)?;
    let _ = tx.set_tty("demo");
    let rc = tx.authenticate(0);
    let text = tx.strerror(rc);
    drop(tx);

    println!("\nPAM returned {} ({text}).", code_name(rc));
    if rc == PAM_SUCCESS {
        println!("The second factor was accepted: this login would go ahead.");
    } else {
        println!("The login is refused.");
    }
    println!("\nWhat the module logged (syslog authpriv; copied to event_log):");
    for line in lab.events().lines() {
        println!("  {line}");
    }
    if rc == PAM_SUCCESS {
        Ok(())
    } else {
        Err(format!("login refused: {}", code_name(rc)))
    }
}

fn current_user() -> Option<String> {
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let rc = unsafe {
        libc::getpwuid_r(
            libc::geteuid(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return None;
    }
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

fn is_tty() -> bool {
    unsafe { libc::isatty(0) == 1 }
}

/// Turns terminal echo off while a code is typed; restores it when dropped.
struct EchoOff(Option<libc::termios>);

impl EchoOff {
    fn new() -> EchoOff {
        if !is_tty() {
            return EchoOff(None);
        }
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(0, &mut t) } != 0 {
            return EchoOff(None);
        }
        let saved = t;
        t.c_lflag &= !libc::ECHO;
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
        EchoOff(Some(saved))
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(t) = self.0 {
            unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
        }
    }
}
