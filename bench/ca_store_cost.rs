//! What trusting the system CA store costs one login (a fresh process):
//! run under `valgrind --tool=callgrind` with `load` (read the bundle),
//! `scan` (read it and look for an issuer no root has: every root's prefix
//! decoded, the most a handshake can cost) or nothing (the process alone).
use pam_twilio_2fa::ca_store::{load, Source};

fn main() {
    let what = std::env::args().nth(1).unwrap_or_default();
    if what.is_empty() {
        return;
    }
    let bundle = load(&Source::System).expect("system bundle");
    if what == "scan" {
        let found = bundle.roots_for(&[b"\x30\x00".as_slice()]);
        eprintln!("{} roots found", found.len());
    }
}
