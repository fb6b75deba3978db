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

impl Source {
    /// The roots `cfg` asks for: its `ca_file`, else the system bundle.
    pub fn of(cfg: &crate::config::Config) -> Source {
        match &cfg.ca_file {
            Some(path) => Source::File(path.clone()),
            None => Source::System,
        }
    }
}

/// A CA bundle as read: PEM text, decoded only in part when a server's
/// chain asks for its issuer (see `roots_for`).
#[derive(Debug)]
pub struct Bundle {
    pub path: PathBuf,
    text: String,
}

/// Base64 characters decoded first from each root: 384 bytes, enough for
/// the fields up to the subject of all but a few roots of today's bundles
/// (median 257 bytes, at most 489 in Debian's); the others are decoded in
/// full.
const PREFIX: usize = 512;

impl Bundle {
    /// A bundle from PEM text; it must hold at least one certificate.
    pub fn from_pem(path: PathBuf, text: String) -> Result<Bundle, String> {
        if !text.contains("-----BEGIN CERTIFICATE-----") {
            return Err("holds no PEM certificate".into());
        }
        Ok(Bundle { path, text })
    }

    /// The roots whose subject is one of `issuers` (DER Names, compared
    /// byte for byte as webpki does). Blocks that are not base64 are
    /// skipped: they cannot be an issuer of anything.
    pub fn roots_for(&self, issuers: &[&[u8]]) -> Vec<CertificateDer<'static>> {
        let b64 = &base64::engine::general_purpose::STANDARD;
        let mut found = Vec::new();
        let mut head = Vec::with_capacity(PREFIX);
        for raw in blocks(&self.text) {
            head.clear();
            let mut lines = raw.split('\n');
            for line in lines.by_ref() {
                head.extend_from_slice(line.trim_ascii().as_bytes());
                if head.len() >= PREFIX {
                    break;
                }
            }
            let complete = head.len() < PREFIX;
            head.truncate(head.len().min(PREFIX) / 4 * 4);
            let full = || {
                let mut body = Vec::with_capacity(raw.len());
                for line in raw.split('\n') {
                    body.extend_from_slice(line.trim_ascii().as_bytes());
                }
                b64.decode(body).ok()
            };
            let der = match b64.decode(&head).ok().as_deref().and_then(subject_of) {
                Some(subject) if issuers.contains(&subject) => full(),
                Some(_) => None,
                // The subject ends past the prefix: decode it all.
                None if !complete => {
                    full().filter(|d| subject_of(d).is_some_and(|s| issuers.contains(&s)))
                }
                None => None,
            };
            found.extend(der.map(CertificateDer::from));
        }
        found
    }
}

/// The raw base64 text (line breaks included) of every `CERTIFICATE` block.
/// Base64 has no '-', so a block ends at the first '-' after its BEGIN
/// line, found with memchr rather than line by line (which was a third of
/// the cost).
fn blocks(pem: &str) -> impl Iterator<Item = &str> + '_ {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut rest = pem;
    std::iter::from_fn(move || loop {
        let start = rest.find(BEGIN)? + BEGIN.len();
        rest = &rest[start..];
        let end = rest.find('-')?;
        let body = &rest[..end];
        rest = &rest[end..];
        if let Some(after) = rest.strip_prefix(END) {
            rest = after;
            return Some(body);
        }
    })
}

/// One DER header: (tag, header length, content length).
fn header(d: &[u8]) -> Option<(u8, usize, usize)> {
    let (&tag, rest) = d.split_first()?;
    let (&first, rest) = rest.split_first()?;
    if first < 0x80 {
        return Some((tag, 2, first as usize));
    }
    let n = (first & 0x7f) as usize;
    if n == 0 || n > 3 || rest.len() < n {
        return None;
    }
    let len = rest[..n]
        .iter()
        .fold(0usize, |acc, &b| acc << 8 | b as usize);
    Some((tag, 2 + n, len))
}

/// The first fields of a certificate's TBSCertificate, each as a whole
/// TLV, stopping at `want` fields; works on a prefix of the certificate.
fn tbs_fields(der: &[u8], want: usize) -> Option<Vec<&[u8]>> {
    let (0x30, h, _) = header(der)? else {
        return None;
    };
    let der = &der[h..];
    let (0x30, h, _) = header(der)? else {
        return None;
    };
    let mut rest = &der[h..];
    let mut fields = Vec::with_capacity(want + 1);
    while fields.len() < want {
        let (tag, h, len) = header(rest)?;
        let field = rest.get(..h + len)?;
        rest = &rest[h + len..];
        // The optional [0] version is not counted.
        if !(tag == 0xa0 && fields.is_empty()) {
            fields.push(field);
        }
    }
    Some(fields)
}

/// A certificate's issuer Name (DER), from the whole certificate.
pub fn issuer_of(der: &[u8]) -> Option<&[u8]> {
    // serialNumber, signature, issuer
    tbs_fields(der, 3).map(|f| f[2])
}

/// A certificate's subject Name (DER); `None` if `der` ends before it.
fn subject_of(der: &[u8]) -> Option<&[u8]> {
    // serialNumber, signature, issuer, validity, subject
    tbs_fields(der, 5).map(|f| f[4])
}

/// Reads the bundle once; any problem is an error (fail closed), never a
/// fallback to other roots.
pub fn load(source: &Source) -> Result<Bundle, String> {
    match source {
        Source::File(path) => read_bundle(path),
        Source::System => load_system(SYSTEM_BUNDLES),
    }
}

fn load_system(candidates: &[&str]) -> Result<Bundle, String> {
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

fn read_bundle(path: &Path) -> Result<Bundle, String> {
    match secure_file::open_if_exists(path, Mode::Policy) {
        Ok(Some(file)) => parse(path, file),
        Ok(None) => Err(format!("ca_file {}: no such file", path.display())),
        Err(e) => Err(format!("ca_file {}: {e}", path.display())),
    }
}

fn parse(path: &Path, file: std::fs::File) -> Result<Bundle, String> {
    let shown = path.display();
    let text = secure_file::read_from(file, MAX_BUNDLE).map_err(|e| format!("{shown}: {e}"))?;
    Bundle::from_pem(path.to_path_buf(), text).map_err(|e| format!("{shown}: {e}"))
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
    fn text_without_certificates_is_refused() {
        assert!(Bundle::from_pem("x".into(), "hello".into()).is_err());
        assert!(Bundle::from_pem("x".into(), String::new()).is_err());
    }

    fn der(pem: &str) -> Vec<u8> {
        use rustls::pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn only_the_issuers_roots_are_decoded_and_returned() {
        let (a, b) = (
            crate::pki::Ca::new("A").unwrap(),
            crate::pki::Ca::new("B").unwrap(),
        );
        // A subject longer than the decoded prefix takes the full-decode path.
        let long = crate::pki::Ca::new(&"L".repeat(900)).unwrap();
        let text = format!(
            "junk\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n\
             -----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n{}{}\r\n{}",
            a.cert_pem,
            b.cert_pem.replace('\n', "\r\n"),
            long.cert_pem
        );
        let bundle = Bundle::from_pem("test".into(), text).unwrap();
        for ca in [&a, &b, &long] {
            let leaf = der(&ca.leaf(&["localhost"]).unwrap().cert_pem);
            let issuer = issuer_of(&leaf).unwrap();
            let found = bundle.roots_for(&[issuer]);
            assert_eq!(found.len(), 1);
            assert_eq!(found[0].as_ref(), der(&ca.cert_pem).as_slice());
        }
        let stranger = crate::pki::Ca::new("C").unwrap();
        let leaf = der(&stranger.leaf(&["localhost"]).unwrap().cert_pem);
        assert!(bundle.roots_for(&[issuer_of(&leaf).unwrap()]).is_empty());
        assert!(bundle.roots_for(&[]).is_empty());
    }

    #[test]
    fn truncated_der_gives_no_names() {
        assert_eq!(issuer_of(&[]), None);
        assert_eq!(issuer_of(&[0x30, 0x82]), None);
        assert_eq!(subject_of(&[0x30, 0x03, 0x30, 0x01, 0x02]), None);
    }
}
