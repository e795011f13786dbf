//! A SCEP `pkiMessage` from anyone (RFC 8894, as the CA's SCEP server reads it before its
//! signer is known): the CMS SignedData, its attributes and signer, the signature check, the
//! EnvelopedData opened by an RA (its recipients, algorithms and padding), the PKCS#10
//! challenge password and the IssuerAndSerialNumber/IssuerAndSubject inside, and the signed
//! FAILURE written back must be read, refused or written without a panic.
#![no_main]

use cryptoutil_protocols::scep::{self, FailInfo, Ra, Reply, Request, Status};
use libfuzzer_sys::fuzz_target;

const RA_CERT: &[u8] = include_bytes!("../../protocols/src/scep/testdata/ra.der");
const RA_KEY: &[u8] = include_bytes!("../../protocols/src/scep/testdata/ra.pk8");

/// The RA, loaded once (an RSA key parse per input would be most of the work).
static RA: std::sync::OnceLock<Option<Ra>> = std::sync::OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Some(ra) = RA.get_or_init(|| Ra::new(RA_KEY, RA_CERT).ok()) else {
        return;
    };
    // The bytes as an envelope, and as what an envelope holds.
    let _ = ra.open_with(data, |p| Some(p.len()));
    let _ = scep::challenge_password(data);
    let _ = scep::issuer_and(data);
    let Ok(request) = Request::parse(data) else {
        return;
    };
    let _ = request.verify();
    if let Ok(content) = ra.open_with(&request.envelope, |p| Some(p.to_vec())) {
        let _ = scep::challenge_password(&content);
        let _ = scep::issuer_and(&content);
    }
    let reply = Reply {
        request: &request,
        status: Status::Failure(FailInfo::BadRequest),
        now: 1_800_000_000,
    };
    let _ = ra.reply(&reply);
});
