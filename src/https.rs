//! HTTPS for the Twilio client: rustls on ring in ureq's connector chain,
//! with a verifier that trusts the roots of one CA bundle (`ca_store`) but
//! decodes only those the server's chain can lead to.
//!
//! Why not ureq's own rustls connector: it takes roots only as a full list,
//! and decoding all 144 roots of a distribution bundle cost more than the
//! rest of a login (BENCHMARKS.md). Here the bundle is kept as text and,
//! once per connection, only the certificates whose subject is the issuer
//! of a certificate the server sent become trust anchors; rustls/webpki then
//! verify the chain exactly as they would against the whole store.
//!
//! The bundle is read once the ClientHello is on its way (`Trust`), so the
//! read overlaps the wait for the server's answer rather than delaying the
//! first byte: on a real path to Twilio the round trip hides it.

use crate::ca_store::{self, Bundle};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, StreamOwned};
use std::io::{Read, Write};
use std::sync::{Arc, OnceLock};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
    TransportAdapter,
};

/// The roots HTTPS trusts: a CA bundle, read on first use.
#[derive(Debug)]
pub struct Trust {
    source: ca_store::Source,
    bundle: OnceLock<Result<Bundle, String>>,
}

impl Trust {
    /// Roots to be read from `source` when a connection first needs them.
    pub fn from(source: ca_store::Source) -> Trust {
        Trust {
            source,
            bundle: OnceLock::new(),
        }
    }

    /// Roots already read.
    pub fn of(bundle: Bundle) -> Trust {
        Trust {
            source: ca_store::Source::File(bundle.path.clone()),
            bundle: OnceLock::from(Ok(bundle)),
        }
    }

    /// The bundle, read (and checked) the first time; a store that cannot
    /// be read fails every connection, with the reason.
    pub fn bundle(&self) -> Result<&Bundle, RootsUnavailable> {
        self.bundle
            .get_or_init(|| ca_store::load(&self.source))
            .as_ref()
            .map_err(|e| RootsUnavailable(format!("cannot load the CA roots for HTTPS: {e}")))
    }
}

/// Why no roots could be read: carried to the client inside an io::Error.
#[derive(Debug)]
pub struct RootsUnavailable(pub String);

impl std::fmt::Display for RootsUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RootsUnavailable {}

/// The rustls client settings for one agent: ring, TLS 1.2 and 1.3, our
/// verifier.
pub fn client_config(trust: Arc<Trust>) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(BundleVerifier {
        trust,
        provider: provider.clone(),
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .dangerous() // not dangerous: webpki verifies, with the store's roots
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Arc::new(config)
}

#[derive(Debug)]
struct BundleVerifier {
    trust: Arc<Trust>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for BundleVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // Every issuer the chain names: webpki may build its path through
        // any of the intermediates the server sent.
        let issuers: Vec<&[u8]> = std::iter::once(end_entity)
            .chain(intermediates)
            .filter_map(|c| ca_store::issuer_of(c.as_ref()))
            .collect();
        // Read already by TlsConnector::connect, which stops at an error.
        let bundle = self
            .trust
            .bundle()
            .map_err(|e| rustls::Error::General(e.0))?;
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(bundle.roots_for(&issuers));
        if roots.is_empty() {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ));
        }
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(format!("verifier: {e}")))?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The TLS step of ureq's connector chain (after TCP and any proxy).
#[derive(Debug)]
pub struct TlsConnector {
    /// None: no roots for this agent, so every https:// URL is refused.
    tls: Option<(Arc<ClientConfig>, Arc<Trust>)>,
}

impl TlsConnector {
    pub fn new(trust: Option<Arc<Trust>>) -> TlsConnector {
        TlsConnector {
            tls: trust.map(|t| (client_config(t.clone()), t)),
        }
    }
}

impl<In: Transport> Connector<In> for TlsConnector {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let (config, trust) = self
            .tls
            .clone()
            .ok_or(ureq::Error::Tls("no CA roots loaded"))?;
        let host = details
            .uri
            .host()
            .ok_or(ureq::Error::Tls("no host name"))?
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name = ServerName::try_from(host)
            .map_err(|_| ureq::Error::Tls("not a valid host name for TLS"))?
            .to_owned();
        // rustls errors travel inside io::Error, as complete_io's do.
        let mut conn = ClientConnection::new(config, name)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        // The ClientHello first; the roots are read while it travels and
        // the server answers. Without them nothing more is sent.
        while conn.wants_write() {
            conn.write_tls(&mut sock)?;
        }
        trust.bundle().map_err(std::io::Error::other)?;
        conn.complete_io(&mut sock)?;
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(TlsTransport {
            buffers,
            stream: StreamOwned { conn, sock },
        })))
    }
}

pub struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTransport").finish_non_exhaustive()
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}
