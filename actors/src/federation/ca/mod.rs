//! The CA as a peer (`federation.ca_enabled`): a service asks it for its TLS certificate with
//! EST `/simpleenroll` (RFC 7030 §4.2: a PKCS#10 request in, a CMS certs-only answer out),
//! authenticated with this process's access token. Until the CA answers, or while it is
//! unavailable, the service presents the certificate its `ca_fallback_mode` names. The CA
//! service itself arrives with its own issue; this is the seam it plugs into.
//!
//! # Layout
//! - [`enroll`]: the `Enrollment` actor of one service: enrolls, presents, keeps, renews.

pub mod enroll;

use std::time::Duration;

use cryptoutil_federation::{Bytes, Method};
use cryptoutil_protocols::est;

use crate::federation::peer::{CallAuth, Peer, PeerRequest, Retries};
use crate::federation::PeerError;

/// The CA.
#[derive(Clone, Debug)]
pub struct CaPeer {
    peer: Peer,
}

impl CaPeer {
    /// Through `peer`.
    pub fn new(peer: Peer) -> Self {
        Self { peer }
    }

    /// The peer.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The certificate chain (DER, leaf first as the CA sends it) the CA issues for `csr_der`.
    /// Enrollment runs in the background, so it retries on the whole schedule within `deadline`.
    pub async fn enroll(
        &self,
        csr_der: &[u8],
        deadline: Duration,
    ) -> Result<Vec<Vec<u8>>, PeerError> {
        let peer = self.peer.name().as_str();
        let request = PeerRequest {
            method: Method::POST,
            path: est::SIMPLEENROLL,
            headers: vec![
                ("content-type", est::CSR_MEDIA_TYPE.to_owned()),
                ("content-transfer-encoding", "base64".to_owned()),
            ],
            body: Bytes::from(est::body(csr_der)),
            auth: CallAuth::Bearer,
        };
        let r = self.peer.call(&request, Retries::Within(deadline)).await?;
        if !r.status.is_success() {
            return Err(PeerError::Credentials {
                peer,
                reason: format!("the CA refused the request: HTTP {}", r.status.as_u16()),
            });
        }
        est::certs_only(&r.body).map_err(|e| PeerError::Failed {
            peer,
            reason: e.to_string(),
        })
    }
}
