//! Many hosts, one Twilio service: how many codes can an attacker who
//! knows the password have Twilio evaluate for one user in 10 minutes,
//! by cycling through N hosts?
//!
//! Each host is its own state directory, config, phone directory and PAM
//! service file; each login runs in its own process (tests/reexec); all
//! hosts talk to one simulator that models Twilio's documented limits: 5
//! checks per verification (then 60202), 5 sends per verification (then
//! 60203), and a cancelled verification lets the next send start afresh.
//! "Evaluated" counts the checks the simulator compared against a live
//! verification (`Simulator::evaluations`).
//!
//! Without `[rate_limits]` every host's own lockout stops the attacker
//! after `max_attempts` wrong codes on it, and the module cancels the
//! verification after the last one, so N hosts give N x max_attempts.
//! With a per-user bucket of Twilio's Service Rate Limits (2 sends per 10
//! minutes), shared by every host through Twilio, the figure is at most
//! 2 x max_attempts, whatever N is.
//!
//! Run with `-- --nocapture` to see the table.

mod common;
mod reexec;

use common::*;
use pam_twilio_2fa::lab::Lab;
use pam_twilio_2fa::simulator::{SimConfig, Simulator};
use reexec::ChildLogin;
use std::path::{Path, PathBuf};

/// The default, and Twilio's own 5 checks per verification.
const MAX_ATTEMPTS: usize = 5;
/// The per-user bucket of the bounded fleet: sends per 10 minutes.
const USER_BUCKET_MAX: usize = 2;
const WINDOW: u64 = 600;

/// Not a test of its own: one login of one host, in a child process.
#[test]
#[ignore = "the child process of the other tests in this file"]
fn child_login() {
    if let Some(req) = reexec::requested() {
        req.run();
    }
}

/// What every host of the bounded fleet adds to its config: the same
/// secret file content, the same rate limit.
fn rate_limits(secret: &Path) -> String {
    format!(
        "[rate_limits]\nsecret_file = \"{}\"\n\n[[rate_limits.limit]]\nname = \"t2fa_user\"\nkey = \"user\"\nbuckets = [{{ max = {USER_BUCKET_MAX}, interval = {WINDOW} }}, {{ max = 10, interval = 3600 }}]\n",
        secret.display()
    )
}

struct Fleet {
    sim: Simulator,
    hosts: Vec<Lab>,
    outbox: PathBuf,
    /// Holds the outbox and the shared secret.
    _dir: Lab,
}

fn fleet(n: usize, limited: bool) -> Fleet {
    let dir = Lab::new("t2fa-fleet").expect("lab");
    let outbox = dir.dir.join("outbox");
    let sim = Simulator::start(
        "127.0.0.1:0",
        SimConfig {
            outbox: Some(outbox.clone()),
            ..SimConfig::default()
        },
    )
    .expect("simulator");
    let secret = dir.dir.join("rate_limits.secret");
    dir.write_private(&secret, "fleet-secret-0123456789abcdef0123456789\n")
        .expect("secret");
    let module = module_path();
    let mut extra = format!(
        "allow_change = false\nallowed_methods = [\"sms\"]\nmax_attempts = {MAX_ATTEMPTS}\n"
    );
    if limited {
        extra.push_str(&rate_limits(&secret));
    }
    let hosts: Vec<Lab> = (0..n)
        .map(|_| {
            let lab = Lab::new("t2fa-host").expect("lab");
            lab.write_config(&sim, &extra).expect("config");
            lab.set_phone(USER, PHONE).expect("phone");
            lab.write_service(SERVICE, &module, "").expect("service");
            lab
        })
        .collect();
    if limited {
        // Once for the fleet, from any host: the rate limit must exist in
        // Twilio before a send names it.
        let (ok, out, err) = twilio_2fa(&[
            "rate-limits",
            "apply",
            "--config",
            hosts[0].config.to_str().unwrap(),
        ]);
        assert!(ok, "apply: {out}{err}");
    }
    Fleet {
        sim,
        hosts,
        outbox,
        _dir: dir,
    }
}

/// The attacker goes through every host once, typing wrong codes at each
/// prompt; returns the codes Twilio evaluated for the user's number in the
/// 10 minutes that started with the attack.
fn attack(f: &Fleet) -> usize {
    let start = f.sim.now();
    for host in &f.hosts {
        let login = ChildLogin {
            confdir: &host.confdir,
            service: SERVICE,
            user: USER,
            outbox: &f.outbox,
            right_code: false,
            ruid: None,
        };
        let end = reexec::spawn(&[], "child_login", &login, &[]).finish(60);
        let rc = end
            .pam_rc()
            .unwrap_or_else(|| panic!("no PAM code from the child: {end:?}"));
        assert_ne!(rc, 0, "a wrong code let the attacker in: {end:?}");
    }
    f.sim
        .evaluations()
        .iter()
        .filter(|(t, to)| to == PHONE && *t >= start && *t < start + WINDOW)
        .count()
}

fn figures(limited: bool) -> Vec<(usize, usize)> {
    [1, 5, 10]
        .into_iter()
        .map(|n| (n, attack(&fleet(n, limited))))
        .collect()
}

fn print(title: &str, rows: &[(usize, usize)]) {
    println!("{title}");
    println!("  hosts  codes Twilio evaluated per user in 10 minutes");
    for (n, count) in rows {
        println!("  {n:>5}  {count}");
    }
}

#[test]
fn without_rate_limits_the_guesses_grow_with_the_number_of_hosts() {
    let rows = figures(false);
    print(
        &format!("without [rate_limits] (max_attempts = {MAX_ATTEMPTS}):"),
        &rows,
    );
    for (n, count) in rows {
        assert_eq!(count, n * MAX_ATTEMPTS, "N = {n}");
    }
}

#[test]
fn a_per_user_bucket_bounds_the_guesses_whatever_the_number_of_hosts() {
    let rows = figures(true);
    print(
        &format!(
            "with [rate_limits] t2fa_user (key user, {USER_BUCKET_MAX} sends per {WINDOW} s; max_attempts = {MAX_ATTEMPTS}):"
        ),
        &rows,
    );
    let bound = USER_BUCKET_MAX * MAX_ATTEMPTS;
    for (n, count) in &rows {
        assert!(*count <= bound, "N = {n}: {count} > {bound}");
    }
    // One host alone is held by its own lockout; from two hosts on, the
    // bucket is what stops the attacker.
    assert_eq!(rows[0].1, MAX_ATTEMPTS);
    assert_eq!(rows[1].1, bound);
    assert_eq!(rows[2].1, bound);
}
