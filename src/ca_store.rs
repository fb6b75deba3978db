//! Which roots HTTPS trusts: the distribution's CA bundle, or the config's
//! `ca_file` instead of it.
//!
//! Never anything from the environment: `SSL_CERT_FILE` / `SSL_CERT_DIR`
//! belong to the user who runs sudo or su, and would let them vouch for a
//! server of their own. (rustls-native-certs and rustls-platform-verifier
//! read those variables on Linux, which is why neither is used here.)
//!
//! The bundle is read through `secure_file`, like the config: a bundle that
//! someone other than root could rewrite is refused, never used.

use crate::secure_file::{self, Mode};
use base64::Engine;
use rustls::pki_types::CertificateDer;
use std::path::{Path, PathBuf};

/// The one bundle each distribution family maintains (update-ca-certificates,
/// update-ca-trust), first found wins.
pub const SYSTEM_BUNDLES: &[&str] = &[
    // Debian, Ubuntu, Alpine, Arch, Gentoo.
    "/etc/ssl/certs/ca-certificates.crt",
    // Fedora, RHEL, CentOS, Amazon Linux (a link into ca-trust/extracted).
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    // openSUSE, SLES.
    "/etc/ssl/ca-bundle.pem",
];

/// Today's bundles are ~220 KB; anything past this is not one.
const MAX_BUNDLE: u64 = 4 * 1024 * 1024;

/// Where the roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The first of `SYSTEM_BUNDLES` that exists.
    System,
    /// The config's `ca_file`: these roots only, the system's are not used.
    File(PathBuf),
}

/// The roots as DER, and the file they were read from (for messages).
#[derive(Debug)]
pub struct Roots {
    pub path: PathBuf,
    pub certs: Vec<CertificateDer<'static>>,
}

/// Reads the roots once; any problem is an error (fail closed), never a
/// fallback to other roots.
pub fn load(source: &Source) -> Result<Roots, String> {
    match source {
        Source::File(path) => read_bundle(path),
        Source::System => load_system(SYSTEM_BUNDLES),
    }
}

fn load_system(candidates: &[&str]) -> Result<Roots, String> {
    for name in candidates {
        let path = Path::new(name);
        // Other families' directories (e.g. /etc/pki on Debian) are absent.
        if !path.exists() {
            continue;
        }
        // A bundle that exists but is unsafe is refused, not skipped: a
        // later candidate would not be the distribution's store.
        match secure_file::open_if_exists(path, Mode::Policy) {
            Ok(None) => continue,
            Ok(Some(file)) => return parse(path, file),
            Err(e) => return Err(format!("system CA bundle {name}: {e}")),
        }
    }
    Err(format!(
        "no system CA bundle found (looked for {}); install ca-certificates or set ca_file",
        candidates.join(", ")
    ))
}

fn read_bundle(path: &Path) -> Result<Roots, String> {
    match secure_file::open_if_exists(path, Mode::Policy) {
        Ok(Some(file)) => parse(path, file),
        Ok(None) => Err(format!("ca_file {}: no such file", path.display())),
        Err(e) => Err(format!("ca_file {}: {e}", path.display())),
    }
}

fn parse(path: &Path, file: std::fs::File) -> Result<Roots, String> {
    let shown = path.display();
    let text = secure_file::read_from(file, MAX_BUNDLE).map_err(|e| format!("{shown}: {e}"))?;
    let certs = parse_pem(&text).map_err(|e| format!("{shown}: {e}"))?;
    Ok(Roots {
        path: path.to_path_buf(),
        certs,
    })
}

/// Every `CERTIFICATE` block of a PEM text (other blocks are skipped, as
/// OpenSSL does); none at all, or one that is not base64, is an error.
///
/// Not rustls-pki-types' PEM reader: its base64 is constant-time (made for
/// private keys) and took ~8 million instructions for the 144 roots of
/// Debian's bundle, several times a whole login; certificates are public.
/// Lines are found with `str::lines` (memchr), not byte by byte, which
/// halved what is left.
pub fn parse_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut certs = Vec::new();
    let mut body = String::new();
    let mut inside = false;
    for line in pem.lines() {
        let line = line.trim_ascii();
        if !inside {
            inside = line == "-----BEGIN CERTIFICATE-----";
            body.clear();
        } else if line == "-----END CERTIFICATE-----" {
            let der = base64::engine::general_purpose::STANDARD
                .decode(&body)
                .map_err(|e| format!("a certificate block is not base64 ({e})"))?;
            certs.push(CertificateDer::from(der));
            inside = false;
        } else {
            body.push_str(line);
        }
    }
    if inside {
        return Err("a certificate block has no END line".into());
    }
    if certs.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_bundle_is_an_error_naming_where_it_looked() {
        let e = load_system(&["/nonexistent/a.crt", "/nonexistent/b.pem"]).unwrap_err();
        assert!(e.contains("/nonexistent/a.crt, /nonexistent/b.pem"), "{e}");
    }

    #[test]
    fn pem_without_certificates_is_refused() {
        assert!(parse_pem("hello").is_err());
        assert!(parse_pem("").is_err());
        let bad = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(parse_pem(bad).is_err());
        let cut = "-----BEGIN CERTIFICATE-----\nMIIB\n";
        assert!(parse_pem(cut).is_err());
    }

    #[test]
    fn pem_blocks_are_decoded_and_others_skipped() {
        let pem = "junk\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n\
            -----BEGIN CERTIFICATE-----\nAQID\nBA==\n-----END CERTIFICATE-----\n\
            -----BEGIN CERTIFICATE-----\r\nBQY=\r\n-----END CERTIFICATE-----\r\n";
        let certs = parse_pem(pem).unwrap();
        assert_eq!(certs.len(), 2);
        assert_eq!(certs[0].as_ref(), &[1, 2, 3, 4]);
        assert_eq!(certs[1].as_ref(), &[5, 6]);
    }
}
