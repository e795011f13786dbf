//! CMP `ir` (RFC 4210, MAC-protected with an RA secret) beside the CA's issuance API, in one
//! run (`scripts/bench-ca` runs it): per round, `count` RA secrets and `count` `ir` messages
//! (one P-256 key, a signature proof of possession, PBM with SHA-256 and HMAC-SHA256 over
//! 500 iterations as `openssl cmp` sends, implicit confirmation asked, so each enrollment is
//! one round trip) made untimed; then, timed, `count` issuances through the core API and
//! `count` `ir`s, each answered `ip` with status accepted, at `--concurrency` in flight over
//! kept-alive TLS connections. Prints rate and p99 for both, per round.
//!
//! Usage: cmp_bench --ca-file F --cmp-url URL --secrets-url URL --ra-token T --label L
//!   --issue-url URL --token T --csr-pem FILE [--count 2000] [--concurrency 32] [--rounds 3]

use std::sync::Arc;

use cryptoutil_protocols::cmp::protection::Protection;
use cryptoutil_tests::bench::{fail, timed, Core, Fallible, Load, Rounds};
use hyper::Method;
use rcgen::SigningKey as _;
use serde_json::{json, Value};
use tokio::sync::Mutex;
use yasna::models::ObjectIdentifier;
use yasna::Tag;

const NAME: &str = "cmp.bench.example";

fn oid(arcs: &[u64]) -> ObjectIdentifier {
    ObjectIdentifier::from_slice(arcs)
}

/// One `CertReqMsg` for `key`: subject and DNS name [`NAME`], a signature proof of
/// possession over its `CertRequest`.
fn cert_req_msg(key: &rcgen::KeyPair) -> Fallible<Vec<u8>> {
    let name = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_set(|w| {
                w.next().write_sequence(|w| {
                    w.next().write_oid(&oid(&[2, 5, 4, 3]));
                    w.next().write_utf8_string(NAME);
                });
            });
        });
    });
    let spki = rcgen::PublicKeyData::subject_public_key_info(key);
    let spki_contents = yasna::parse_der(&spki, |r| {
        r.read_sequence(|r| Ok((r.next().read_der()?, r.next().read_der()?)))
    })?;
    let san = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next()
                .write_tagged_implicit(Tag::context(2), |w| w.write_ia5_string(NAME));
        });
    });
    let request = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_u8(0);
            w.next().write_sequence(|w| {
                w.next()
                    .write_tagged(Tag::context(5), |w| w.write_der(&name));
                w.next().write_tagged_implicit(Tag::context(6), |w| {
                    w.write_sequence(|w| {
                        w.next().write_der(&spki_contents.0);
                        w.next().write_der(&spki_contents.1);
                    });
                });
                w.next().write_tagged_implicit(Tag::context(9), |w| {
                    w.write_sequence(|w| {
                        w.next().write_sequence(|w| {
                            w.next().write_oid(&oid(&[2, 5, 29, 17]));
                            w.next().write_bytes(&san);
                        });
                    });
                });
            });
        });
    });
    let signature = key.sign(&request)?;
    Ok(yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_der(&request);
            w.next().write_tagged_implicit(Tag::context(1), |w| {
                w.write_sequence(|w| {
                    w.next().write_sequence(|w| {
                        w.next().write_oid(&oid(&[1, 2, 840, 10045, 4, 3, 2]));
                    });
                    w.next().write_bitvec_bytes(&signature, signature.len() * 8);
                });
            });
        });
    }))
}

/// An `ir` carrying `request`, MAC-protected (PBM) with `secret`, `senderKID` `reference`.
fn ir(request: &[u8], reference: &str, secret: &str) -> Fallible<Vec<u8>> {
    let random = || cryptoutil_protocols::cmp::nonce().map_err(|e| fail(e.to_string()));
    let (salt, tid, nonce) = (random()?, random()?, random()?);
    let alg = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_oid(&oid(&[1, 2, 840, 113_533, 7, 66, 13]));
            w.next().write_sequence(|w| {
                w.next().write_bytes(&salt);
                w.next().write_sequence(|w| {
                    w.next().write_oid(&oid(&[2, 16, 840, 1, 101, 3, 4, 2, 1]));
                });
                w.next().write_u32(500);
                w.next().write_sequence(|w| {
                    w.next().write_oid(&oid(&[1, 2, 840, 113_549, 2, 9]));
                });
            });
        });
    });
    let Ok(Protection::Mac(mac)) = Protection::parse(&alg) else {
        return Err(fail("PBM parameters"));
    };
    let header = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_u8(2);
            w.next()
                .write_tagged(Tag::context(4), |w| w.write_der(&[0x30, 0x00]));
            w.next()
                .write_tagged(Tag::context(4), |w| w.write_der(&[0x30, 0x00]));
            w.next()
                .write_tagged(Tag::context(1), |w| w.write_der(&alg));
            w.next()
                .write_tagged(Tag::context(2), |w| w.write_bytes(reference.as_bytes()));
            w.next()
                .write_tagged(Tag::context(4), |w| w.write_bytes(&tid));
            w.next()
                .write_tagged(Tag::context(5), |w| w.write_bytes(&nonce));
            w.next().write_tagged(Tag::context(8), |w| {
                w.write_sequence_of(|w| {
                    w.next().write_sequence(|w| {
                        w.next().write_oid(&oid(&[1, 3, 6, 1, 5, 5, 7, 4, 13]));
                        w.next().write_null();
                    });
                });
            });
        });
    });
    let body = yasna::construct_der(|w| {
        w.write_tagged(Tag::context(0), |w| {
            w.write_sequence_of(|w| w.next().write_der(request));
        });
    });
    let protected = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_der(&header);
            w.next().write_der(&body);
        });
    });
    let tag = mac.compute(secret.as_bytes(), &protected);
    Ok(yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_der(&header);
            w.next().write_der(&body);
            w.next().write_tagged(Tag::context(0), |w| {
                w.write_bitvec_bytes(&tag, tag.len() * 8);
            });
        });
    }))
}

/// The `PKIStatus` of an `ip`'s one certificate response (none: not an `ip`).
fn ip_status(der: &[u8]) -> Option<i64> {
    yasna::parse_der(der, |r| {
        r.read_sequence(|r| {
            let _header = r.next().read_der()?;
            let status = r.next().read_tagged(Tag::context(1), |r| {
                r.read_sequence(|r| {
                    let _ca_pubs =
                        r.read_optional(|r| r.read_tagged(Tag::context(1), |r| r.read_der()))?;
                    let mut status = -1;
                    r.next().read_sequence_of(|r| {
                        r.read_sequence(|r| {
                            let _id = r.next().read_i64()?;
                            status = r.next().read_sequence(|r| {
                                let s = r.next().read_i64()?;
                                let _text = r.read_optional(|r| r.read_der())?;
                                let _fail = r.read_optional(|r| r.read_der())?;
                                Ok(s)
                            })?;
                            let _pair = r.read_optional(|r| r.read_der())?;
                            let _info = r.read_optional(|r| r.read_der())?;
                            Ok(())
                        })
                    })?;
                    Ok(status)
                })
            })?;
            let _protection = r.read_optional(|r| r.read_der())?;
            let _extra = r.read_optional(|r| r.read_der())?;
            Ok(status)
        })
    })
    .ok()
}

#[tokio::main]
async fn main() -> Fallible<()> {
    let load = Load::parse()?;
    let (args, client) = (&load.args, load.client.clone());
    let (count, concurrency, rounds) = (load.count, load.concurrency, load.rounds);
    let cmp_url = args.get("cmp-url")?.to_owned();
    let secrets_url = args.get("secrets-url")?.to_owned();
    let ra_bearer = format!("Bearer {}", args.get("ra-token")?);
    let label = args.get("label")?.to_owned();
    let csr_pem = std::fs::read_to_string(args.get("csr-pem")?)?;
    let core = Core::new(&load, &csr_pem)?;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let request = Arc::new(cert_req_msg(&key)?);

    let mut rounds_seen = Rounds::start();
    for round in 1..=rounds {
        // RA secrets and the messages they protect, made untimed.
        let ready = Arc::new(Mutex::new(Vec::with_capacity(count)));
        {
            let (client, url, bearer, label, request, ready) = (
                client.clone(),
                secrets_url.clone(),
                ra_bearer.clone(),
                label.clone(),
                Arc::clone(&request),
                Arc::clone(&ready),
            );
            timed(count, concurrency, move |_| {
                let (client, url, bearer, label, request, ready) = (
                    client.clone(),
                    url.clone(),
                    bearer.clone(),
                    label.clone(),
                    Arc::clone(&request),
                    Arc::clone(&ready),
                );
                async move {
                    let r = client
                        .send(
                            Method::POST,
                            &url,
                            &[
                                ("authorization", bearer.as_str()),
                                ("content-type", "application/json"),
                            ],
                            json!({"label": label}).to_string().into_bytes().into(),
                        )
                        .await?;
                    let made: Value = serde_json::from_slice(&r.body)?;
                    let (Some(reference), Some(secret)) = (
                        made.get("reference").and_then(Value::as_str),
                        made.get("secret").and_then(Value::as_str),
                    ) else {
                        return Err(fail(format!("secret: {} {made}", r.status)));
                    };
                    let message = ir(&request, reference, secret)?;
                    ready.lock().await.push(message);
                    Ok(())
                }
            })
            .await?;
        }
        let (core_rate, core_p99) = core.timed(count, concurrency).await?;
        let (c, url) = (client.clone(), cmp_url.clone());
        let (cmp_rate, cmp_p99) = timed(count, concurrency, move |_| {
            let (client, url, ready) = (c.clone(), url.clone(), Arc::clone(&ready));
            async move {
                let message = ready
                    .lock()
                    .await
                    .pop()
                    .ok_or_else(|| fail("no message left"))?;
                let r = client
                    .send(
                        Method::POST,
                        &url,
                        &[("content-type", "application/pkixcmp")],
                        message.into(),
                    )
                    .await?;
                match ip_status(&r.body) {
                    Some(0) if r.status.as_u16() == 200 => Ok(()),
                    other => Err(fail(format!("ir: {} status {other:?}", r.status))),
                }
            }
        })
        .await?;
        rounds_seen.round(
            round,
            "cryptoutil CMP ir (MAC, implicit confirm)",
            (core_rate, core_p99),
            (cmp_rate, cmp_p99),
        );
    }
    rounds_seen.summary("CMP ir");
    Ok(())
}
