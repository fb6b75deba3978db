//! `twilio-2fa`: the admin command of pam-twilio-2fa.

mod admin;
mod admin_args;
mod cli;
mod demo;
mod ldap_phone;
mod messages;
mod policy;
mod rate_limits;
mod user;

use clap::Parser;
use cli::{Cli, Command, SimulatorArgs};
use pam_twilio_2fa::config::Config;
use pam_twilio_2fa::conversation::terminal_safe;
use pam_twilio_2fa::simulator::{SimConfig, Simulator};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    // clap reads the raw arguments: user names (status, unlock, forget,
    // policy, user, ldap-phone) may be any bytes; everything else is text.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Errors quote paths, names and file contents: no escape
            // sequence in them reaches the terminal.
            eprintln!("twilio-2fa: {}", terminal_safe(&e));
            ExitCode::FAILURE
        }
    }
}

/// `--help` and `--version` (stdout, exit 0) or a usage error (stderr,
/// exit 2). clap's errors echo what was typed: made terminal-safe too.
fn usage_error(e: clap::Error) -> ExitCode {
    let text = terminal_safe(&e.render().to_string());
    if e.use_stderr() {
        eprint!("{text}");
    } else {
        let _ = cli::write_stdout(text.as_bytes());
    }
    ExitCode::from(e.exit_code().clamp(0, 255) as u8)
}

fn run(command: Command) -> Result<(), String> {
    match command {
        Command::CheckConfig { path } => check_config(&path),
        Command::Status(a) => admin::status(a),
        Command::Unlock(a) => admin::unlock(a),
        Command::Forget(a) => admin::forget(a),
        Command::Policy(a) => policy::run(a),
        Command::User(c) => user::run(c),
        Command::LdapPhone(a) => ldap_phone::run(a),
        Command::RateLimits(c) => rate_limits::run(c),
        Command::Messages(a) => messages::run(a),
        Command::Simulator(a) => simulator(a),
        Command::Demo(a) => demo::run(a),
        Command::Completions { shell } => cli::completions(shell),
    }
}

fn check_config(path: &Path) -> Result<(), String> {
    let cfg = Config::load(path).map_err(|e| e.to_string())?;
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

fn simulator(a: SimulatorArgs) -> Result<(), String> {
    let listen = &a.listen;
    let addr: std::net::SocketAddr = listen
        .parse()
        .map_err(|_| format!("--listen {listen}: not an ADDR:PORT"))?;
    if !addr.ip().is_loopback() {
        return Err("the simulator listens on loopback addresses only (127.0.0.1 or [::1])".into());
    }
    let mut cfg = SimConfig {
        outbox: a.outbox,
        print: true,
        ..SimConfig::default()
    };
    if let Some(v) = a.account_sid {
        cfg.account_sid = v;
    }
    if let Some(v) = a.auth_token {
        cfg.auth_token = v;
    }
    if let Some(v) = a.service_sid {
        cfg.service_sid = v;
    }
    let mut ca_note = String::new();
    // clap lets through --tls alone, both files, or neither.
    if let (Some(cert), Some(key)) = (&a.tls_cert, &a.tls_key) {
        let read = |p: &PathBuf| {
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
        };
        cfg.tls = Some(pam_twilio_2fa::pki::Leaf {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        });
    } else if a.tls {
        let (leaf, ca_path) = throwaway_ca()?;
        cfg.tls = Some(leaf);
        ca_note = format!(
            "HTTPS certificate signed by a throwaway CA: {}\n  (for ca_file, copy it to a root-owned directory such as /etc/twilio-2fa/)",
            ca_path.display()
        );
    }
    let throwaway_tls = a.tls;
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
