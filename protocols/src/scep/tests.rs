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
        let csr = ra().open_with(&req.envelope, |p| Some(p.to_vec())).unwrap();
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
    let refused = ra()
        .open_with(&req.envelope, |p| Some(p.to_vec()))
        .unwrap_err();
    assert_eq!(refused.fail, FailInfo::BadAlg);
}

/// Where the encrypted content key (an OCTET STRING of the RA's modulus size) starts.
fn encrypted_key_at(envelope: &[u8]) -> usize {
    envelope
        .windows(4)
        .position(|w| w == [0x04, 0x82, 0x01, 0x00])
        .unwrap()
        + 4
}

#[test]
fn every_envelope_that_does_not_open_to_its_content_is_the_same_refusal() {
    let opened = |envelope: &[u8]| ra().open_with(envelope, issuer_and);
    // What a GetCert carries, sealed to the RA: opens.
    let (issuer, _) = names(RA_CERT).unwrap();
    let mut inner = issuer.to_vec();
    inner.extend_from_slice(&[0x02, 0x01, 0x0a]);
    let asked = envelope::tlv(SEQUENCE, &inner);
    let good = seal(&asked, RA_CERT).unwrap();
    assert_eq!(opened(&good).unwrap(), (issuer.to_vec(), vec![0x0a]));

    let mut refusals = Vec::new();
    // Not for this RA: sealed to the client's certificate.
    let req = Request::parse(SHA256_REQ).unwrap();
    refusals.push(opened(&seal(&asked, &req.signer).unwrap()).unwrap_err());
    // The content key altered (implicit rejection), twice: the same answer each time.
    let mut wrong_key = good.clone();
    let at = encrypted_key_at(&wrong_key);
    wrong_key[at + 100] ^= 0x01;
    refusals.push(opened(&wrong_key).unwrap_err());
    refusals.push(opened(&wrong_key).unwrap_err());
    // The last ciphertext block altered: bad padding.
    let mut bad_padding = good.clone();
    let last = bad_padding.len() - 1;
    bad_padding[last] ^= 0x01;
    refusals.push(opened(&bad_padding).unwrap_err());
    // Good padding, but not what the message carries.
    refusals.push(opened(&seal(b"not an IssuerAndSerialNumber", RA_CERT).unwrap()).unwrap_err());
    // Not an envelope at all.
    refusals.push(opened(RA_CERT).unwrap_err());
    for r in &refusals {
        assert_eq!(r, &refusals[0]);
    }
    assert_eq!(refusals[0].fail, FailInfo::BadMessageCheck);
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
    assert!(ra().open_with(RA_CERT, |p| Some(p.to_vec())).is_err());
    assert!(ra().open_with(&[], |p| Some(p.to_vec())).is_err());
    assert!(issuer_and(&[]).is_none());
    assert!(challenge_password(RA_CERT).is_none());
}

#[test]
fn a_sealed_answer_opens_with_the_recipient_s_key_only() {
    let req = Request::parse(SHA256_REQ).unwrap();
    let content = crate::est::certs_only_message([RA_CERT]);
    let sealed = seal(&content, &req.signer).unwrap();
    let client = Ra::new(CLIENT_KEY, &req.signer).unwrap();
    let opened = client.open_with(&sealed, |p| Some(p.to_vec())).unwrap();
    assert_eq!(opened, content);
    assert!(ra().open_with(&sealed, |p| Some(p.to_vec())).is_err());
}

#[test]
fn a_cert_rep_carries_the_scep_attributes_and_the_ra_s_signature() {
    let mut req = Request::parse(SHA256_REQ).unwrap();
    // Any PrintableString transactionID comes back as sent ('?' and space included).
    req.transaction_id = "a? b:c".to_owned();
    let client = Ra::new(CLIENT_KEY, &req.signer).unwrap();
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
        // A request is never a CertRep; read as a message, it is the RA's, signed.
        assert!(Request::parse(&der).is_err());
        let rep = Request::read(&der).unwrap();
        assert_eq!(rep.message_type, MessageType::CertRep);
        assert_eq!(rep.signer, RA_CERT);
        rep.verify().unwrap();
        assert_eq!(rep.transaction_id, req.transaction_id);
        assert_eq!(
            rep.recipient_nonce.as_deref(),
            Some(req.sender_nonce.as_slice())
        );
        assert_ne!(rep.sender_nonce, req.sender_nonce);
        let pki_status = |b: u8| der.windows(3).any(|w| w == [0x13, 0x01, b]);
        match status {
            Status::Success(content) => {
                assert!(pki_status(b'0'));
                let opened = client
                    .open_with(&rep.envelope, |p| Some(p.to_vec()))
                    .unwrap();
                assert_eq!(opened, content);
            }
            Status::Pending => assert!(pki_status(b'3') && rep.envelope.is_empty()),
            Status::Failure(_) => assert!(pki_status(b'2') && rep.envelope.is_empty()),
        }
    }
    // From 2050 the signing time is a GeneralizedTime, not a panic.
    let late = ra().reply(&Reply {
        request: &req,
        status: Status::Pending,
        now: 2_600_000_000,
    });
    assert!(late.is_ok());
}

#[test]
fn issuer_and_serial_and_issuer_and_subject_are_read() {
    let (issuer, _) = names(RA_CERT).unwrap();
    let mut inner = issuer.to_vec();
    inner.extend_from_slice(&[0x02, 0x02, 0x00, 0x85]);
    assert_eq!(
        issuer_and(&envelope::tlv(SEQUENCE, &inner)),
        Some((issuer.to_vec(), vec![0x85]))
    );
    let mut with_subject = issuer.to_vec();
    with_subject.extend_from_slice(issuer);
    assert_eq!(
        issuer_and(&envelope::tlv(SEQUENCE, &with_subject)),
        Some((issuer.to_vec(), issuer.to_vec()))
    );
    assert!(issuer_and(&envelope::tlv(SEQUENCE, issuer)).is_none());
}

/// `tests/interop/scep_get.py` (pyasn1-alt-modules and `cryptography`) asking GetCert for
/// serial 0x0a of the issuer named like the test RA, encrypted to the test RA.
const GET_CERT: &[u8] = include_bytes!("testdata/getcert-python.der");

#[test]
fn a_get_cert_names_its_issuer_and_serial() {
    let req = Request::parse(GET_CERT).unwrap();
    assert_eq!(req.message_type, MessageType::GetCert);
    req.verify().unwrap();
    let asked = ra().open_with(&req.envelope, |p| Some(p.to_vec())).unwrap();
    let (issuer, serial) = issuer_and(&asked).unwrap();
    let (ra_issuer, _) = names(RA_CERT).unwrap();
    assert_eq!(issuer, ra_issuer);
    assert_eq!(serial, vec![0x0a]);
}

#[test]
fn pss_parameters_other_than_the_hash_s_own_are_a_bad_algorithm() {
    assert!(Request::parse(PSS_REQ).unwrap().verify().is_ok());
    // strongSwan's parameters: SHA-512, MGF1 with SHA-512, a 64-byte salt ([2] INTEGER 0x40);
    // the SignerInfo's are the last in the message (the certificate before it has its own).
    let salt = PSS_REQ
        .windows(5)
        .rposition(|w| w == [0xa2, 0x03, 0x02, 0x01, 0x40])
        .unwrap();
    let mut shorter = PSS_REQ.to_vec();
    shorter[salt + 4] = 0x20;
    let refused = Request::parse(&shorter).unwrap().verify().unwrap_err();
    assert_eq!(refused.fail, FailInfo::BadAlg);
    // MGF1 with another hash: the hash OID after id-mgf1 made SHA-256 (..04 02 03 -> 01).
    let mgf1 = PSS_REQ
        .windows(11)
        .rposition(|w| {
            w == [
                0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08,
            ]
        })
        .unwrap();
    let mut other = PSS_REQ.to_vec();
    assert_eq!(other[mgf1 + 23], 0x03);
    other[mgf1 + 23] = 0x01;
    assert_eq!(
        Request::parse(&other).unwrap().verify().unwrap_err().fail,
        FailInfo::BadAlg
    );
}
