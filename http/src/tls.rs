//! Server TLS configurations: TLS 1.3 only, the suite's one provider, HTTP/2 and HTTP/1.1, and
//! an optional client certificate.
//!
//! Every listener asks for (never requires) a client certificate and accepts whatever chain a
//! client sends, once the client has proved it holds the key (the TLS 1.3 CertificateVerify
//! signature is checked). A certificate grants nothing by itself: identity-authz checks it
//! against a client's registration (`tls_client_auth`, RFC 8705), and a service compares it
//! with the `cnf.x5t#S256` of a certificate-bound access token.

use std::sync::{Arc, PoisonError, RwLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

/// A server configuration presenting `chain` (leaf first) with `key`.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    Ok(swappable_server_config(chain, key)?.0)
}

/// A server configuration presenting `chain` with `key` until [`ServerCert::replace`] gives it
/// another (a certificate from the CA replacing the dynamic one): new handshakes present the
/// new certificate, open connections keep theirs.
pub fn swappable_server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<(Arc<ServerConfig>, Arc<ServerCert>), rustls::Error> {
    let provider = cryptoutil_protocols::tls::provider();
    let cert = Arc::new(ServerCert {
        current: RwLock::new(Arc::new(CertifiedKey::from_der(chain, key, &provider)?)),
    });
    let verifier = Arc::new(OfferClientCert {
        algs: provider.signature_verification_algorithms,
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(cryptoutil_protocols::tls::VERSIONS)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::clone(&cert) as Arc<dyn ResolvesServerCert>);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(config), cert))
}

/// The certificate a listener presents, replaceable while it serves.
#[derive(Debug)]
pub struct ServerCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ServerCert {
    /// From now on, `chain` (leaf first) with `key`; refused unless the key is the leaf's.
    pub fn replace(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<(), rustls::Error> {
        let certified = certified(chain, key)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = certified;
        Ok(())
    }

    /// `chain` with `key` from now on, but only if the leaf presented now is `expected` (DER),
    /// compared and replaced under one lock: whether it was replaced.
    pub fn replace_if(
        &self,
        expected: &[u8],
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<bool, rustls::Error> {
        let certified = certified(chain, key)?;
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current.cert.first().map(|c| c.as_ref()) != Some(expected) {
            return Ok(false);
        }
        *current = certified;
        Ok(true)
    }

    /// The leaf presented now (DER).
    pub fn leaf(&self) -> Option<CertificateDer<'static>> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        current.cert.first().cloned()
    }
}

/// `chain` (leaf first) with `key` as rustls presents them; refused unless the key is the
/// leaf's.
fn certified(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, rustls::Error> {
    let provider = cryptoutil_protocols::tls::provider();
    let certified = CertifiedKey::from_der(chain, key, &provider)?;
    certified.keys_match()?;
    Ok(Arc::new(certified))
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(PoisonError::into_inner),
        ))
    }
}

/// Asks for a client certificate, requires none, and accepts any chain whose key signed the
/// handshake; what the certificate means is decided per request, not here.
#[derive(Debug)]
struct OfferClientCert {
    algs: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for OfferClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not supported".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// The certificate chain the client presented on this connection (leaf first), in every
/// request's extensions when there is one.
#[derive(Clone, Debug)]
pub struct PeerCertificates(pub Arc<Vec<CertificateDer<'static>>>);

impl PeerCertificates {
    /// SHA-256 of the leaf, base64url: RFC 8705's `x5t#S256`.
    pub fn thumbprint(&self) -> Option<String> {
        self.0.first().map(|leaf| {
            cryptoutil_protocols::jose::b64::encode(&cryptoutil_protocols::oauth::token_digest(
                leaf.as_ref(),
            ))
        })
    }
}
