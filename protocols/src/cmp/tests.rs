//! The messages here were made by `openssl cmp` (OpenSSL 3.0) against its own mock server:
//! an `ir` with a P-256 key and one with an RSA key, MAC-protected (PBM, secret
//! `test-secret`, reference `ref-1`), the `certConf` after the first, a `p10cr`, a `genm`
//! for `caCerts`, a `pollReq`, and an `rr` signed with the key of `dev1.der`.

use super::protection::{cert_hash, verify, Protection};
use super::reply::{self, Head, PkiStatus, Reply, Status, Unprotected};
use super::*;
use crate::ca::csr::{RequestKey, San};

const IR: &[u8] = include_bytes!("testdata/ir-pbm.der");
const IR_RSA: &[u8] = include_bytes!("testdata/ir-rsa.der");
const CERT_CONF: &[u8] = include_bytes!("testdata/certconf.der");
const P10CR: &[u8] = include_bytes!("testdata/p10cr.der");
const GENM: &[u8] = include_bytes!("testdata/genm.der");
const POLL_REQ: &[u8] = include_bytes!("testdata/pollreq.der");
const RR: &[u8] = include_bytes!("testdata/rr.der");
const DEV1: &[u8] = include_bytes!("testdata/dev1.der");

fn mac_of(message: &Message) -> protection::Mac {
    let alg = message
        .header
        .protection_alg
        .as_deref()
        .expect("protectionAlg");
    match Protection::parse(alg).expect("protection") {
        Protection::Mac(mac) => mac,
        Protection::Signature(_) => panic!("expected a MAC"),
    }
}

#[test]
fn an_openssl_ir_is_read_and_its_pbm_and_proof_of_possession_verify() {
    let message = Message::parse(IR).expect("parses");
    let h = &message.header;
    assert_eq!(h.pvno, 2);
    assert_eq!(h.sender_kid.as_deref(), Some(&b"ref-1"[..]));
    assert_eq!(h.transaction_id.len(), 16);
    assert!(!h.implicit_confirm);
    let mac = mac_of(&message);
    let tag = message.protection.as_deref().expect("protected");
    assert!(mac.verify(b"test-secret", &message.protected_part, tag));
    assert!(!mac.verify(b"test-secreT", &message.protected_part, tag));
    let Body::Ir(request) = &message.body else {
        panic!("an ir: {:?}", message.body)
    };
    assert_eq!(request.cert_req_id, 0);
    let csr = crmf::read(&request.der).expect("checked");
    assert_eq!(csr.subject_text, "CN=dev1");
    assert_eq!(csr.key, RequestKey::P256);
    assert_eq!(csr.sans, vec![San::Dns("dev1.example.com".into())]);
    // The same MAC recomputed over the same bytes: what an answer's protection is.
    assert_eq!(mac.compute(b"test-secret", &message.protected_part), tag);
}

#[test]
fn an_rsa_request_is_read_and_a_tampered_proof_of_possession_is_bad_pop() {
    let message = Message::parse(IR_RSA).expect("parses");
    let Body::Ir(request) = &message.body else {
        panic!("an ir")
    };
    let csr = crmf::read(&request.der).expect("checked");
    assert_eq!(csr.subject_text, "CN=dev2, O=Example");
    assert_eq!(csr.key, RequestKey::Rsa(2048));
    let mut bad = request.der.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        crmf::read(&bad).expect_err("refused").failure,
        Failure::BadPop
    );
}

/// `der`'s (a SEQUENCE) elements.
fn parts(der: &[u8]) -> Vec<Vec<u8>> {
    let (contents, _) = crate::der::expect(der, 0x30).expect("a sequence");
    super::elements(contents)
        .expect("elements")
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect()
}

fn sequence(parts: &[Vec<u8>]) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            for p in parts {
                w.next().write_der(p);
            }
        })
    })
}

#[test]
fn a_template_asking_for_its_own_serial_or_without_a_key_is_refused() {
    let message = Message::parse(IR).expect("parses");
    let Body::Ir(request) = &message.body else {
        panic!("an ir")
    };
    // CertReqMsg = { certReq = { certReqId, certTemplate }, popo }: rebuilt with a template
    // that differs, its lengths right.
    let with_template = |edit: &dyn Fn(Vec<Vec<u8>>) -> Vec<Vec<u8>>| {
        let msg = parts(&request.der);
        let req = parts(&msg[0]);
        let template = sequence(&edit(parts(&req[1])));
        sequence(&[sequence(&[req[0].clone(), template]), msg[1].clone()])
    };
    let serial = with_template(&|mut fields| {
        fields.insert(0, vec![0x81, 0x01, 0x05]);
        fields
    });
    let refused = crmf::read(&serial).expect_err("serial");
    assert_eq!(refused.failure, Failure::BadCertTemplate);
    assert!(
        refused.reason.contains("serialNumber"),
        "{}",
        refused.reason
    );
    let keyless = with_template(&|fields| {
        fields
            .into_iter()
            .filter(|f| f.first() != Some(&0xa6))
            .collect()
    });
    assert_eq!(
        crmf::read(&keyless).expect_err("no key").failure,
        Failure::BadCertTemplate
    );
    // The template unchanged but rebuilt: still accepted (the rebuilding is faithful), and a
    // changed subject breaks the proof of possession, which covers the template.
    assert!(crmf::read(&with_template(&|f| f)).is_ok());
    let other = with_template(&|fields| {
        fields
            .into_iter()
            .map(|f| match f.first() {
                Some(0xa5) => {
                    let name = yasna::construct_der(|w| {
                        w.write_sequence(|w| {
                            w.next().write_set(|w| {
                                w.next().write_sequence(|w| {
                                    w.next().write_oid(
                                        &yasna::models::ObjectIdentifier::from_slice(&[2, 5, 4, 3]),
                                    );
                                    w.next().write_utf8_string("dev9");
                                });
                            });
                        });
                    });
                    yasna::construct_der(|w| {
                        w.write_tagged(yasna::Tag::context(5), |w| w.write_der(&name))
                    })
                }
                _ => f,
            })
            .collect()
    });
    assert_eq!(
        crmf::read(&other).expect_err("subject").failure,
        Failure::BadPop
    );
}

#[test]
fn certconf_p10cr_genm_and_pollreq_from_openssl_are_read() {
    let conf = Message::parse(CERT_CONF).expect("certConf");
    let Body::CertConf(statuses) = &conf.body else {
        panic!("certConf")
    };
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].cert_req_id, 0);
    assert!(statuses[0].accepted);
    // The client hashed the certificate it got (dev1.der) with its signature's hash.
    assert_eq!(Some(statuses[0].cert_hash.clone()), cert_hash(DEV1, None));
    assert!(conf.header.recip_nonce.is_some());

    let p10 = Message::parse(P10CR).expect("p10cr");
    let Body::P10cr(csr) = &p10.body else {
        panic!("p10cr")
    };
    assert_eq!(
        crate::ca::csr::parse(csr).expect("csr").subject_text,
        "CN=p10"
    );

    let genm = Message::parse(GENM).expect("genm");
    assert_eq!(genm.body, Body::Genm(vec![InfoType::CaCerts]));

    let poll = Message::parse(POLL_REQ).expect("pollReq");
    assert_eq!(poll.body, Body::PollReq(vec![0]));
}

#[test]
fn an_rr_signed_with_the_certificate_to_revoke_verifies_with_its_key() {
    let message = Message::parse(RR).expect("rr");
    let Body::Rr(details) = &message.body else {
        panic!("rr")
    };
    assert_eq!(details.reason, Some(1));
    let serial = crate::hex(details.serial.as_deref().expect("serial"));
    assert_eq!(serial, "6851a2b6e4c5cd7a540ba2b6c0e7739dd05213d0");
    let alg = match Protection::parse(message.header.protection_alg.as_deref().expect("alg")) {
        Ok(Protection::Signature(alg)) => alg,
        other => panic!("a signature: {other:?}"),
    };
    assert_eq!(message.extra_certs.first().map(Vec::as_slice), Some(DEV1));
    let (_, cert) = x509_parser::parse_x509_certificate(DEV1).expect("cert");
    let spki = cert.public_key().raw;
    let sig = message.protection.as_deref().expect("signed");
    assert!(verify(spki, alg, &message.protected_part, sig));
    let mut tampered = message.protected_part.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(!verify(spki, alg, &tampered, sig));
}

#[test]
fn malformed_or_foreign_messages_are_refused_with_their_failure_bit() {
    assert_eq!(
        Message::parse(b"\x30\x03\x02\x01\x02")
            .expect_err("short")
            .refusal
            .failure,
        Failure::BadDataFormat
    );
    // pvno 1 (cmp1999).
    let mut old = IR.to_vec();
    let at = old
        .windows(3)
        .position(|w| w == [0x02, 0x01, 0x02])
        .expect("pvno");
    old[at + 2] = 1;
    assert_eq!(
        Message::parse(&old).expect_err("cmp1999").refusal.failure,
        Failure::UnsupportedVersion
    );
    for cut in [1, 10, 100, IR.len() - 1] {
        assert!(Message::parse(&IR[..cut]).is_err(), "cut at {cut}");
    }
}

#[test]
fn pbmac1_matches_an_independent_pbkdf2_and_hmac() {
    // Python: hmac.new(hashlib.pbkdf2_hmac('sha256', b'test-secret', bytes(range(16)), 1000, 32),
    //                  b'protected part', hashlib.sha256).hexdigest()
    let expected = "35c49a74d753311cbdfa25e9367f6aaf86e2956222929ac34a2271b9fe7c5166";
    let oid = |arcs: &[u64]| yasna::models::ObjectIdentifier::from_slice(arcs);
    let salt: Vec<u8> = (0u8..16).collect();
    let alg = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_oid(&oid(&[1, 2, 840, 113_549, 1, 5, 14]));
            w.next().write_sequence(|w| {
                w.next().write_sequence(|w| {
                    w.next().write_oid(&oid(&[1, 2, 840, 113_549, 1, 5, 12]));
                    w.next().write_sequence(|w| {
                        w.next().write_bytes(&salt);
                        w.next().write_u32(1000);
                        w.next().write_u32(32);
                        w.next().write_sequence(|w| {
                            w.next().write_oid(&oid(&[1, 2, 840, 113_549, 2, 9]));
                            w.next().write_null();
                        });
                    });
                });
                w.next().write_sequence(|w| {
                    w.next().write_oid(&oid(&[1, 2, 840, 113_549, 2, 9]));
                    w.next().write_null();
                });
            });
        });
    });
    let Ok(Protection::Mac(mac)) = Protection::parse(&alg) else {
        panic!("PBMAC1")
    };
    assert_eq!(
        crate::hex(&mac.compute(b"test-secret", b"protected part")),
        expected
    );
    // Its own encoding reads back to the same MAC.
    let Ok(Protection::Mac(again)) = Protection::parse(&mac.algorithm_der()) else {
        panic!("re-read")
    };
    assert_eq!(
        crate::hex(&again.compute(b"test-secret", b"protected part")),
        expected
    );
}

#[test]
fn iteration_counts_are_bounded_before_any_work() {
    let oid = |arcs: &[u64]| yasna::models::ObjectIdentifier::from_slice(arcs);
    let pbm = |count: u64| {
        yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next().write_oid(&oid(&[1, 2, 840, 113_533, 7, 66, 13]));
                w.next().write_sequence(|w| {
                    w.next().write_bytes(&[1u8; 16]);
                    w.next().write_sequence(|w| {
                        w.next().write_oid(&oid(&[2, 16, 840, 1, 101, 3, 4, 2, 1]))
                    });
                    w.next().write_u64(count);
                    w.next()
                        .write_sequence(|w| w.next().write_oid(&oid(&[1, 2, 840, 113_549, 2, 9])));
                });
            });
        })
    };
    assert!(matches!(
        Protection::parse(&pbm(500)),
        Ok(Protection::Mac(_))
    ));
    for count in [0, 99, 50_000, u64::MAX] {
        let refused = Protection::parse(&pbm(count)).expect_err("out of bounds");
        assert_eq!(refused.failure, Failure::BadAlg, "{count}");
    }
}

#[test]
fn an_answer_carries_the_transaction_and_nonces_and_a_mac_the_client_can_check() {
    let request = Message::parse(IR).expect("parses");
    let mac = mac_of(&request).keyed(b"test-secret");
    let alg = mac.algorithm_der().to_vec();
    let ca_name = [0x30, 0x00];
    let nonce = [7u8; 16];
    let head = Head {
        pvno: request.header.pvno,
        sender: &ca_name,
        recipient: &request.header.sender,
        time: 1_800_000_000,
        protection_alg: Some(&alg),
        sender_kid: request.header.sender_kid.as_deref(),
        transaction_id: &request.header.transaction_id,
        sender_nonce: &nonce,
        recip_nonce: &request.header.sender_nonce,
        implicit_confirm: true,
    };
    let answer = Unprotected::new(
        &head,
        &Reply::Cert {
            tag: reply::IP,
            cert_req_id: 0,
            status: Status::ACCEPTED,
            cert: Some(DEV1),
            ca_pubs: &[],
        },
    )
    .expect("answer");
    let tag = mac.compute(&answer.protected_part());
    let der = answer.finish(Some(&tag), &[DEV1]);
    // Read back with the request parser's header reader: the same transaction, the nonce
    // echoed, implicit confirmation granted, and the MAC checks.
    let (header, body, protection) = yasna::parse_der(&der, |r| {
        r.read_sequence(|r| {
            let h = r.next().read_der()?;
            let b = r.next().read_der()?;
            let p = r
                .next()
                .read_tagged(yasna::Tag::context(0), |r| r.read_bitvec_bytes())?;
            let _extra = r.next().read_der()?;
            Ok((h, b, p.0))
        })
    })
    .expect("a PKIMessage");
    let header = parse_header(&header).expect("header");
    assert_eq!(header.transaction_id, request.header.transaction_id);
    assert_eq!(
        header.recip_nonce.as_deref(),
        Some(&request.header.sender_nonce[..])
    );
    assert!(header.implicit_confirm);
    assert_eq!(body.first(), Some(&0xa1));
    let Ok(Protection::Mac(theirs)) =
        Protection::parse(header.protection_alg.as_deref().expect("alg"))
    else {
        panic!("a MAC")
    };
    assert!(theirs.verify(b"test-secret", &answer.protected_part(), &protection));
    let _ = PkiStatus::Waiting;
}

#[test]
fn genp_answers_what_is_asked_and_lists_what_is_not_known() {
    let chain: [&[u8]; 1] = [DEV1];
    let info = reply::CaInfo {
        chain: &chain,
        crl: None,
        key: crate::ca::KeyType::P256,
    };
    let asked = [
        InfoType::CaCerts,
        InfoType::RootCaCert,
        InfoType::CertReqTemplate,
        InfoType::CurrentCrl,
        InfoType::Other(yasna::models::ObjectIdentifier::from_slice(&[1, 2, 3])),
    ];
    let answer = reply::genp(&asked, &info);
    let kinds: Vec<u64> = answer
        .iter()
        .map(|(id, _)| *id.components().last().expect("arc"))
        .collect();
    assert_eq!(kinds, vec![17, 18, 19, 6, 7]);
    assert!(
        answer[1].1.is_none(),
        "no root CA update: the value is absent"
    );
    assert!(answer[3].1.is_none(), "no CRL yet");
}
