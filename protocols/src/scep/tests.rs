//! Requests made by strongSwan's `pki --scep` (5.9.8) against a capture server whose RA is
//! `testdata/ra.der` (key `ra.pk8`), client key `client.pk8`, challenge
//! `ra-ref123:s3cret-value`: SHA-256 + PKCS #1 v1.5 + AES-128-CBC, SHA-512 + PSS, and 3DES.

use super::*;

const SHA256_REQ: &[u8] = include_bytes!("testdata/pkcsreq-sha256.der");
const PSS_REQ: &[u8] = include_bytes!("testdata/pkcsreq-pss-sha512.der");
const DES3_REQ: &[u8] = include_bytes!("testdata/pkcsreq-des3.der");
const RA_CERT: &[u8] = include_bytes!("testdata/ra.der");
const RA_KEY: &[u8] = include_bytes!("testdata/ra.pk8");
const CLIENT_KEY: &[u8] = include_bytes!("testdata/client.pk8");

fn ra() -> Ra {
    Ra::new(RA_KEY, RA_CERT).unwrap()
}

#[test]
fn strongswan_s_pkcsreq_verifies_and_opens_to_its_request() {
    for (der, hash) in [(SHA256_REQ, Hash::Sha256), (PSS_REQ, Hash::Sha512)] {
        let req = Request::parse(der).unwrap();
        assert_eq!(req.message_type, MessageType::PkcsReq);
        assert_eq!(
            req.transaction_id,
            "5C052C141C4C0AC43E9D97A92F48F2FFE853CE7B"
        );
        assert_eq!(req.sender_nonce.len(), 16);
        assert_eq!(req.hash(), hash);
        req.verify().unwrap();
        let csr = ra().open(&req.envelope).unwrap();
        let parsed = crate::ca::csr::parse(&csr).unwrap();
        assert_eq!(parsed.subject_text, "CN=device-1, O=cryptoutil test");
        assert_eq!(
            challenge_password(&csr).as_deref(),
            Some("ra-ref123:s3cret-value")
        );
        // Signed by a self-signed certificate of the request's own key.
        assert_eq!(spki_of(&req.signer).unwrap(), parsed.spki_der);
    }
}

#[test]
fn des_and_3des_envelopes_are_refused_as_bad_algorithms() {
    let req = Request::parse(DES3_REQ).unwrap();
    req.verify().unwrap();
    let refused = ra().open(&req.envelope).unwrap_err();
    assert_eq!(refused.fail, FailInfo::BadAlg);
}

#[test]
fn an_envelope_for_another_ra_or_a_wrong_key_does_not_open() {
    let req = Request::parse(SHA256_REQ).unwrap();
    // The client's own key as an "RA": not a recipient of the envelope.
    let other = Ra::new(CLIENT_KEY, &req.signer).unwrap();
    assert_eq!(
        other.open(&req.envelope).unwrap_err().fail,
        FailInfo::BadMessageCheck
    );
    // The encrypted content key altered: implicit rejection, the content does not decrypt.
    let at = req.envelope.len() / 4;
    let mut envelope = req.envelope.clone();
    envelope[at] ^= 0x01;
    let refused = ra().open(&envelope).unwrap_err();
    assert!(matches!(
        refused.fail,
        FailInfo::BadMessageCheck | FailInfo::BadRequest
    ));
}

#[test]
fn a_changed_signature_or_content_is_a_bad_message_check() {
    let good = Request::parse(SHA256_REQ).unwrap();
    let mut sig = good.clone();
    sig.signature[10] ^= 0x01;
    assert_eq!(sig.verify().unwrap_err().fail, FailInfo::BadMessageCheck);
    let mut content = good.clone();
    content.envelope[40] ^= 0x01;
    assert_eq!(
        content.verify().unwrap_err().fail,
        FailInfo::BadMessageCheck
    );
    let mut attrs = good;
    let last = attrs.signed_attrs.len() - 1;
    attrs.signed_attrs[last] ^= 0x01;
    assert_eq!(attrs.verify().unwrap_err().fail, FailInfo::BadMessageCheck);
}

#[test]
fn anything_else_is_an_error_not_a_panic() {
    for cut in [0, 1, 2, 10, 100, SHA256_REQ.len() / 2, SHA256_REQ.len() - 1] {
        assert!(Request::parse(&SHA256_REQ[..cut]).is_err(), "cut at {cut}");
    }
    assert!(Request::parse(&vec![0x30; MAX_MESSAGE + 1]).is_err());
    assert!(Request::parse(RA_CERT).is_err());
    assert!(ra().open(RA_CERT).is_err());
    assert!(ra().open(&[]).is_err());
    assert!(issuer_and(&[]).is_none());
    assert!(challenge_password(RA_CERT).is_none());
}

#[test]
fn a_sealed_answer_opens_with_the_recipient_s_key_only() {
    let req = Request::parse(SHA256_REQ).unwrap();
    let content = crate::est::certs_only_message([RA_CERT]);
    let sealed = seal(&content, &req.signer).unwrap();
    let client = Ra::new(CLIENT_KEY, &req.signer).unwrap();
    assert_eq!(client.open(&sealed).unwrap().as_slice(), content.as_slice());
    assert!(ra().open(&sealed).is_err());
}

#[test]
fn a_cert_rep_carries_the_scep_attributes_and_the_ra_s_signature() {
    let req = Request::parse(SHA256_REQ).unwrap();
    for status in [
        Status::Success(crate::est::certs_only_message([RA_CERT])),
        Status::Pending,
        Status::Failure(FailInfo::BadRequest),
    ] {
        let der = ra()
            .reply(&Reply {
                request: &req,
                status: status.clone(),
                now: 1_800_000_000,
            })
            .unwrap();
        assert!(crate::der::well_formed(&der));
        // Read back as a message: everything but its type (a CertRep is not a request).
        let err = Request::parse(&der).unwrap_err().to_string();
        assert!(err.contains("messageType"), "{err}");
        let hex = crate::hex(&der);
        // transactionID echoed, recipientNonce = the request's senderNonce.
        assert!(hex.contains(&crate::hex(req.transaction_id.as_bytes())));
        assert!(hex.contains(&crate::hex(&req.sender_nonce)));
        let status_byte = match status {
            Status::Success(_) => b'0',
            Status::Pending => b'3',
            Status::Failure(_) => b'2',
        };
        let pki_status = [0x13, 0x01, status_byte];
        assert!(der.windows(3).any(|w| w == pki_status));
    }
}

#[test]
fn issuer_and_serial_and_issuer_and_subject_are_read() {
    let (issuer, serial) = names(RA_CERT).unwrap();
    let mut inner = issuer.to_vec();
    inner.extend_from_slice(&[0x02, 0x02, 0x00, 0x85]);
    let mut der = vec![0x30, inner.len() as u8];
    der.extend_from_slice(&inner);
    assert_eq!(issuer_and(&der), Some((issuer.to_vec(), vec![0x85])));
    assert!(!serial.is_empty());
}

/// `tests/interop/scep_get.py` (pyasn1-alt-modules and `cryptography`) asking GetCert for
/// serial 0x0a of the issuer named like the test RA, encrypted to the test RA.
const GET_CERT: &[u8] = include_bytes!("testdata/getcert-python.der");

#[test]
fn a_get_cert_names_its_issuer_and_serial() {
    let req = Request::parse(GET_CERT).unwrap();
    assert_eq!(req.message_type, MessageType::GetCert);
    req.verify().unwrap();
    let asked = ra().open(&req.envelope).unwrap();
    let (issuer, serial) = issuer_and(&asked).unwrap();
    let (ra_issuer, _) = names(RA_CERT).unwrap();
    assert_eq!(issuer, ra_issuer);
    assert_eq!(serial, vec![0x0a]);
}
