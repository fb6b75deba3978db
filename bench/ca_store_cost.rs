//! What trusting the system CA store costs one login (a fresh process):
//! run under `valgrind --tool=callgrind` with `load`, `anchors` or nothing.
use pam_twilio_2fa::ca_store::{load, Source};

fn main() {
    let what = std::env::args().nth(1).unwrap_or_default();
    if what.is_empty() {
        return;
    }
    let roots = load(&Source::System).expect("system bundle");
    if what == "anchors" {
        let mut store = rustls::RootCertStore::empty();
        let (added, ignored) = store.add_parsable_certificates(roots.certs);
        eprintln!("{added} roots, {ignored} ignored");
    } else {
        eprintln!("{} certificates", roots.certs.len());
    }
}
