//! `twilio-2fa`: the admin command of pam-twilio-2fa.

mod admin;
mod admin_args;
mod demo;
mod ldap_phone;
mod messages;
mod policy;
mod rate_limits;
mod user;

use pam_twilio_2fa::config::{Config, DEFAULT_PATH};
use pam_twilio_2fa::conversation::terminal_safe;
use pam_twilio_2fa::simulator::{SimConfig, Simulator};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage:
  twilio-2fa check-config [PATH]     check the configuration (default /etc/twilio-2fa/config.toml)
  twilio-2fa simulator --listen ADDR:PORT [--outbox FILE] [--account-sid SID]
                       [--auth-token TOKEN] [--service-sid SID]
                       [--tls | --tls-cert FILE --tls-key FILE]
                                     run the built-in Twilio Verify simulator (loopback only);
                                     --tls: HTTPS with a throwaway CA whose path it prints
  twilio-2fa status USER [--config PATH]   attempts used, lockout, last send, remembered hosts
  twilio-2fa unlock USER [--config PATH]   clear attempts and lockout (also replaces a damaged state file)
  twilio-2fa forget USER [--config PATH]   drop remembered hosts
  twilio-2fa policy USER [--config PATH]   the settings USER logs in with ([[policy]] blocks) and their source
  twilio-2fa user set USER NUMBER [--no-lookup] [--config PATH]
                                     validate (country, carrier lookup) and store a user's number
  twilio-2fa user show USER [--full] [--config PATH]   the user's number (masked unless --full)
  twilio-2fa user remove USER [--config PATH]          remove a number from the phone directory
  twilio-2fa user list [--config PATH]                 every user with a number (masked)
  twilio-2fa ldap-phone USER [--config PATH]
                                     print USER's number from LDAP, for [phones] command
                                     (default config /etc/twilio-2fa/ldap.toml; see docs/ldap.md)
  twilio-2fa rate-limits apply [--config PATH]
                                     create, update or delete the Verify service's rate limits
                                     and buckets to match [rate_limits] (idempotent)
  twilio-2fa rate-limits show [--config PATH]   the rate limits and buckets Twilio has
  twilio-2fa messages [--language L] [--config PATH]
                                     every message id [messages] may override: placeholders,
                                     English text, and L's (with PATH's overrides)
  twilio-2fa demo [--language L] [--module PATH]
                                     a real PAM login against the simulator, on this terminal
  twilio-2fa --version";

fn main() -> ExitCode {
    let raw: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    // User names for status/unlock/forget may be any bytes; everything else is text.
    let result = match raw.first().and_then(|a| a.to_str()) {
        Some("status") => admin::status(&raw[1..]),
        Some("unlock") => admin::unlock(&raw[1..]),
        Some("forget") => admin::forget(&raw[1..]),
        Some("user") => user::run(&raw[1..]),
        Some("policy") => policy::run(&raw[1..]),
        Some("ldap-phone") => ldap_phone::run(&raw[1..]),
        Some("rate-limits") => rate_limits::run(&raw[1..]),
        _ => text_command(&raw),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Errors quote paths, names and file contents: no escape
            // sequence in them reaches the terminal.
            eprintln!("twilio-2fa: {}", terminal_safe(&e));
            ExitCode::FAILURE
        }
    }
}

fn text_command(raw: &[std::ffi::OsString]) -> Result<(), String> {
    let args: Vec<String> = raw
        .iter()
        .map(|a| {
            a.to_str()
                .map(String::from)
                .ok_or("arguments must be UTF-8")
        })
        .collect::<Result<_, _>>()?;
    match args.first().map(String::as_str) {
        Some("check-config") => check_config(&args[1..]),
        Some("simulator") => simulator(&args[1..]),
        Some("demo") => demo::run(&args[1..]),
        Some("messages") => messages::run(&args[1..]),
        Some("--version") | Some("-V") => {
            println!("twilio-2fa {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some("--help") | Some("-h") | Some("help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(format!("unknown or missing command\n{USAGE}")),
    }
}

fn check_config(args: &[String]) -> Result<(), String> {
    if args.len() > 1 {
        return Err(format!("check-config takes at most one path\n{USAGE}"));
    }
    let path = PathBuf::from(args.first().map(String::as_str).unwrap_or(DEFAULT_PATH));
    let cfg = Config::load(&path).map_err(|e| e.to_string())?;
    // What logins would refuse later: unsafe phone sources or event log.
    let mut problems = pam_twilio_2fa::phone_book::Sources::from_config(&cfg).problems();
    problems.extend(
        cfg.event_log
            .as_deref()
            .and_then(pam_twilio_2fa::event_log::problem),
    );
    // The CA roots HTTPS would trust (ca_file, else the system bundle).
    let mut roots = None;
    if cfg.uses_https() {
        use pam_twilio_2fa::ca_store::{load, Source};
        match load(&Source::of(&cfg)) {
            Ok(bundle) => roots = Some(bundle.path),
            Err(e) => problems.push(format!("cannot load the CA roots for HTTPS: {e}")),
        }
    }
    if !problems.is_empty() {
        return Err(format!("{}: {}", path.display(), problems.join("\n")));
    }
    println!("{}: OK\n{}", path.display(), cfg.summary());
    if let Some(roots) = roots {
        println!("CA roots for HTTPS: {}", roots.display());
    }
    group_warnings(&cfg);
    Ok(())
}

/// Group names that do not resolve, said before logins show it: in
/// `only_groups` or `exempt_groups` every user must then verify (the module
/// cannot tell they are outside it); in a `[[policy]]` block, logins by
/// users not matched by an earlier block are denied.
fn group_warnings(cfg: &Config) {
    use pam_twilio_2fa::users::{SystemUsers, UserDb};
    const VERIFY: &str = "every user must verify";
    const DENIED: &str = "logins by users not matched by an earlier block are denied";
    let mut lists = vec![
        ("only_groups".to_string(), &cfg.only_groups, VERIFY),
        ("exempt_groups".to_string(), &cfg.exempt_groups, VERIFY),
    ];
    for (i, p) in cfg.policies.iter().enumerate() {
        lists.push((format!("policy[{}].groups", i + 1), &p.groups, DENIED));
    }
    for (key, names, consequence) in lists {
        for name in names {
            let problem = match SystemUsers.group_id(name) {
                Ok(Some(_)) => continue,
                Ok(None) => "no such group".to_string(),
                Err(e) => e,
            };
            println!(
                "warning: {key}: group \"{}\": {problem}; while it does not resolve, {consequence}",
                terminal_safe(name)
            );
        }
    }
}

/// Reads `--flag value` pairs; every flag must be known and have a value.
pub fn flags(
    args: &[String],
    known: &[&str],
) -> Result<std::collections::HashMap<String, String>, String> {
    let mut out = std::collections::HashMap::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if !known.contains(&a.as_str()) {
            return Err(format!("unknown option {a}\n{USAGE}"));
        }
        let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
        out.insert(a.clone(), v.clone());
    }
    Ok(out)
}

fn simulator(args: &[String]) -> Result<(), String> {
    // `--tls` is the one flag without a value.
    let throwaway_tls = args.iter().any(|a| a == "--tls");
    let args: Vec<String> = args.iter().filter(|a| *a != "--tls").cloned().collect();
    let f = flags(
        &args,
        &[
            "--listen",
            "--outbox",
            "--account-sid",
            "--auth-token",
            "--service-sid",
            "--tls-cert",
            "--tls-key",
        ],
    )?;
    let listen = f
        .get("--listen")
        .ok_or("simulator needs --listen ADDR:PORT (e.g. 127.0.0.1:8080)")?;
    let addr: std::net::SocketAddr = listen
        .parse()
        .map_err(|_| format!("--listen {listen}: not an ADDR:PORT"))?;
    if !addr.ip().is_loopback() {
        return Err("the simulator listens on loopback addresses only (127.0.0.1 or [::1])".into());
    }
    let mut cfg = SimConfig {
        outbox: f.get("--outbox").map(PathBuf::from),
        print: true,
        ..SimConfig::default()
    };
    if let Some(v) = f.get("--account-sid") {
        cfg.account_sid = v.clone();
    }
    if let Some(v) = f.get("--auth-token") {
        cfg.auth_token = v.clone();
    }
    if let Some(v) = f.get("--service-sid") {
        cfg.service_sid = v.clone();
    }
    let mut ca_note = String::new();
    match (throwaway_tls, f.get("--tls-cert"), f.get("--tls-key")) {
        (false, None, None) => {}
        (false, Some(cert), Some(key)) => {
            let read = |p: &String| {
                std::fs::read_to_string(p).map_err(|e| format!("cannot read {p}: {e}"))
            };
            cfg.tls = Some(pam_twilio_2fa::pki::Leaf {
                cert_pem: read(cert)?,
                key_pem: read(key)?,
            });
        }
        (true, None, None) => {
            let (leaf, ca_path) = throwaway_ca()?;
            cfg.tls = Some(leaf);
            ca_note = format!(
                "HTTPS certificate signed by a throwaway CA: {}\n  (for ca_file, copy it to a root-owned directory such as /etc/twilio-2fa/)",
                ca_path.display()
            );
        }
        _ => return Err("use --tls alone, or both --tls-cert FILE and --tls-key FILE".into()),
    }
    let sim = Simulator::start(listen, cfg.clone())
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let url = if cfg.tls.is_some() && throwaway_tls {
        // The throwaway certificate names localhost, 127.0.0.1 and ::1.
        sim.url_for("localhost")
    } else {
        sim.url()
    };
    println!(
        "Twilio Verify simulator on {url}\n  verify_url = \"{url}\"\n  lookup_url = \"{url}\"\n  account_sid = \"{}\"\n  auth_token = \"{}\"\n  service_sid = \"{}\"\nControl: POST {url}/_simulator/fault?kind=delay:MS|status:CODE|429|garbage|close&times=N, POST {url}/_simulator/advance?seconds=N\nCtrl-C stops it.",
        cfg.account_sid,
        cfg.auth_token,
        cfg.service_sid,
    );
    if !ca_note.is_empty() {
        println!("{ca_note}");
    }
    loop {
        std::thread::park();
    }
}

/// `simulator --tls`: a CA made now, in a new private directory, and a
/// certificate it signed for the loopback names.
fn throwaway_ca() -> Result<(pam_twilio_2fa::pki::Leaf, PathBuf), String> {
    use std::os::unix::fs::DirBuilderExt;
    let ca = pam_twilio_2fa::pki::Ca::new("twilio-2fa simulator throwaway CA")?;
    let leaf = ca.leaf(&["localhost", "127.0.0.1", "::1"])?;
    let dir = std::env::temp_dir().join(format!("twilio-2fa-simulator-{}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join("ca.pem");
    std::fs::write(&path, &ca.cert_pem)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok((leaf, path))
}
