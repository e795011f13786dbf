//! A CMP `PKIMessage` from anyone (RFC 4210, as the CA's CMP server reads it before its
//! sender is known): the message, its protection algorithm (PBM and PBMAC1 parameters, whose
//! iteration counts are bounded before any work), the CRMF request of an ir/cr/kur with its
//! proof of possession, a p10cr's PKCS#10, a certConf's hash algorithm and an answer written
//! back over its header must be read, refused or written without a panic.
#![no_main]

use cryptoutil_protocols::ca::csr;
use cryptoutil_protocols::cmp::protection::{self, Protection};
use cryptoutil_protocols::cmp::reply::{Head, Reply, Status, Unprotected};
use cryptoutil_protocols::cmp::{crmf, Body, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = Message::parse(data) else {
        return;
    };
    if let Some(alg) = &message.header.protection_alg {
        if let Ok(Protection::Mac(mac)) = Protection::parse(alg) {
            let tag = message.protection.clone().unwrap_or_default();
            let _ = mac.verify(b"fuzz", &message.protected_part, &tag);
        }
    }
    match &message.body {
        Body::Ir(m) | Body::Cr(m) | Body::Kur(m) => {
            let _ = crmf::read(&m.der);
        }
        Body::P10cr(der) => {
            let _ = csr::parse(der);
        }
        Body::CertConf(statuses) => {
            for s in statuses {
                if let Some(cert) = message.extra_certs.first() {
                    let _ = protection::cert_hash(cert, s.hash_alg.as_deref());
                }
            }
        }
        _ => {}
    }
    let header = &message.header;
    let head = Head {
        pvno: header.pvno,
        sender: &[0x30, 0x00],
        recipient: &header.sender,
        time: 1_800_000_000,
        protection_alg: None,
        sender_kid: header.sender_kid.as_deref(),
        transaction_id: &header.transaction_id,
        sender_nonce: &header.sender_nonce,
        recip_nonce: &header.sender_nonce,
        implicit_confirm: header.implicit_confirm,
    };
    if let Ok(answer) = Unprotected::new(&head, &Reply::Error(Status::ACCEPTED)) {
        let _ = answer.finish(None, &[]);
    }
});
