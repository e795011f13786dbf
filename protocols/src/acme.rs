//! ACME (RFC 8555) messages without I/O: the flattened JWS every request is (its protected
//! header's `alg`, `nonce`, `url` and either `jwk` or `kid`), external account binding
//! (§7.3.4), http-01 key authorizations (§8.1, §8.3), the problem documents errors are
//! (RFC 7807 with ACME's `urn:ietf:params:acme:error:` types) and the DNS identifiers an order
//! may name.

use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::jose::{b64, Jwk, JwsAlg};

/// Signature algorithms an account key may use: asymmetric, FIPS-approved (RFC 8555 §6.2:
/// never `none` nor a MAC).
pub const ACCOUNT_ALGS: [JwsAlg; 10] = {
    use JwsAlg::*;
    [
        ES256, ES384, ES512, RS256, RS384, RS512, PS256, PS384, PS512, EdDSA,
    ]
};
/// MAC algorithms an external account binding may use (RFC 8555 §7.3.4).
pub const EAB_ALGS: [JwsAlg; 3] = [JwsAlg::HS256, JwsAlg::HS384, JwsAlg::HS512];
/// Largest request body read (a finalize with an RSA 4096 CSR is under 4 KiB).
pub const MAX_REQUEST: usize = 64 * 1024;
/// Most identifiers one order may name.
pub const MAX_IDENTIFIERS: usize = 100;

/// An ACME error: its type (the part after `urn:ietf:params:acme:error:`), the HTTP status
/// and a detail for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `badNonce`, `malformed`, `unauthorized`, ...
    pub kind: &'static str,
    /// The HTTP status it is answered with.
    pub status: u16,
    /// What went wrong.
    pub detail: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

impl std::error::Error for Problem {}

impl Problem {
    /// A problem of `kind` answered with `status`.
    pub fn new(kind: &'static str, status: u16, detail: impl Into<String>) -> Self {
        Self {
            kind,
            status,
            detail: detail.into(),
        }
    }

    /// `malformed` (400).
    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new("malformed", 400, detail)
    }

    /// `unauthorized` (403).
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new("unauthorized", 403, detail)
    }

    /// `badNonce` (400): the client retries with the fresh nonce of the answer.
    pub fn bad_nonce() -> Self {
        Self::new(
            "badNonce",
            400,
            "the nonce is unknown, used or expired: retry with the one of this answer",
        )
    }

    /// The problem document (`application/problem+json`); `badSignatureAlgorithm` lists
    /// the algorithms accepted (RFC 8555 §6.2).
    pub fn document(&self) -> Value {
        let mut document = serde_json::json!({
            "type": format!("urn:ietf:params:acme:error:{}", self.kind),
            "detail": self.detail,
            "status": self.status,
        });
        if self.kind == "badSignatureAlgorithm" {
            let algorithms: Vec<&str> = ACCOUNT_ALGS.iter().map(|a| a.as_str()).collect();
            if let Some(map) = document.as_object_mut() {
                map.insert("algorithms".into(), algorithms.into());
            }
        }
        document
    }
}

/// Who signed a request: a new key (only `newAccount` and `revokeCert` accept one), or an
/// account by its URL.
#[derive(Debug, Clone)]
pub enum Signer {
    /// The public key in the header (`jwk`), pinned to the request's `alg`.
    Key(Box<Jwk>),
    /// The account URL (`kid`).
    Account(String),
}

/// A request's JWS, parsed, NOT verified.
#[derive(Debug, Clone)]
pub struct Request {
    /// The signature algorithm.
    pub alg: JwsAlg,
    /// Who claims to have signed.
    pub signer: Signer,
    /// The anti-replay nonce.
    pub nonce: String,
    /// The URL the client meant to reach.
    pub url: String,
    /// The payload: empty for a POST-as-GET.
    pub payload: Vec<u8>,
    input: String,
    signature: Vec<u8>,
}

fn text<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    map.get(name).and_then(Value::as_str)
}

/// A flattened JSON JWS (`{"protected", "payload", "signature"}`, nothing else): its header
/// decoded, payload and signature bytes, and the signing input.
struct Flattened {
    header: Map<String, Value>,
    payload: Vec<u8>,
    input: String,
    signature: Vec<u8>,
}

fn flattened(value: &Value) -> Result<Flattened, Problem> {
    let top = value
        .as_object()
        .ok_or_else(|| Problem::malformed("the body is not a JSON object"))?;
    // RFC 8555 §6.2: flattened serialization, no unprotected header.
    if top
        .keys()
        .any(|k| !matches!(k.as_str(), "protected" | "payload" | "signature"))
    {
        return Err(Problem::malformed(
            "a flattened JWS with protected, payload and signature only",
        ));
    }
    let part = |name: &'static str| {
        text(top, name).ok_or_else(|| Problem::malformed(format!("the JWS has no {name}")))
    };
    let (protected, payload, signature) =
        (part("protected")?, part("payload")?, part("signature")?);
    let header: Map<String, Value> = b64::decode(protected, "protected header")
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or_else(|| Problem::malformed("the protected header is not base64url JSON"))?;
    if header.contains_key("crit") || header.contains_key("b64") {
        return Err(Problem::malformed("crit and b64 are not understood"));
    }
    Ok(Flattened {
        header,
        payload: b64::decode(payload, "payload")
            .map_err(|_| Problem::malformed("the payload is not base64url"))?,
        input: format!("{protected}.{payload}"),
        signature: b64::decode(signature, "signature")
            .map_err(|_| Problem::malformed("the signature is not base64url"))?,
    })
}

impl Request {
    /// Parses a request body (RFC 8555 §6.2): a flattened JWS whose protected header has an
    /// asymmetric `alg`, a `nonce`, the `url` and exactly one of `jwk` (a public key) and
    /// `kid`.
    pub fn parse(body: &[u8]) -> Result<Self, Problem> {
        if body.len() > MAX_REQUEST {
            return Err(Problem::malformed("the request is too large"));
        }
        let value: Value =
            serde_json::from_slice(body).map_err(|_| Problem::malformed("the body is not JSON"))?;
        let jws = flattened(&value)?;
        let header = &jws.header;
        let alg = text(header, "alg")
            .and_then(|a| JwsAlg::parse(a).ok())
            .filter(|a| ACCOUNT_ALGS.contains(a))
            .ok_or_else(|| {
                Problem::new(
                    "badSignatureAlgorithm",
                    400,
                    "alg must be one of ES256, ES384, ES512, RS256, RS384, RS512, PS256, PS384, \
                     PS512, EdDSA",
                )
            })?;
        let nonce = text(header, "nonce")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| Problem::new("badNonce", 400, "the protected header has no nonce"))?
            .to_owned();
        let url = text(header, "url")
            .ok_or_else(|| Problem::malformed("the protected header has no url"))?
            .to_owned();
        let signer = match (header.get("jwk"), text(header, "kid")) {
            (Some(jwk), None) => Signer::Key(Box::new(public_key(jwk, alg)?)),
            (None, Some(kid)) => Signer::Account(kid.to_owned()),
            _ => {
                return Err(Problem::malformed(
                    "the protected header has exactly one of jwk and kid",
                ))
            }
        };
        Ok(Self {
            alg,
            signer,
            nonce,
            url,
            payload: jws.payload,
            input: jws.input,
            signature: jws.signature,
        })
    }

    /// Verifies the signature with `key` (the header's, or the account's).
    pub fn verify(&self, key: &Jwk) -> Result<(), Problem> {
        let key = Jwk::from_material(key.material().clone())
            .pinned(self.alg)
            .map_err(|_| Problem::malformed("the key does not fit alg"))?;
        key.verify(self.alg, self.input.as_bytes(), &self.signature)
            .map_err(|_| Problem::malformed("the JWS signature does not verify"))
    }

    /// Whether this is a POST-as-GET (an empty payload, RFC 8555 §6.3).
    pub fn is_get(&self) -> bool {
        self.payload.is_empty()
    }

    /// The payload as a JSON object (`{}` allowed).
    pub fn json(&self) -> Result<Map<String, Value>, Problem> {
        serde_json::from_slice(&self.payload)
            .map_err(|_| Problem::malformed("the payload is not a JSON object"))
    }
}

/// A public JWK for `alg` (a private key, or one that does not fit `alg`, is refused).
pub fn public_key(jwk: &Value, alg: JwsAlg) -> Result<Jwk, Problem> {
    let parsed = Jwk::from_value(jwk)
        .ok()
        .filter(|k| !k.is_private() && jwk.get("d").is_none() && jwk.get("k").is_none())
        .ok_or_else(|| Problem::new("badPublicKey", 400, "jwk must be a public key"))?;
    Jwk::from_material(parsed.material().clone())
        .pinned(alg)
        .map_err(|_| Problem::new("badPublicKey", 400, "jwk does not fit alg"))
}

/// An external account binding (RFC 8555 §7.3.4), parsed, NOT verified.
#[derive(Debug, Clone)]
pub struct Binding {
    /// The MAC key's identifier (an RA secret's reference).
    pub kid: String,
    alg: JwsAlg,
    input: String,
    signature: Vec<u8>,
}

impl Binding {
    /// Parses `externalAccountBinding` of a newAccount request whose `url` was `url` and whose
    /// key is `account_key`: a flattened JWS with a MAC `alg`, a `kid`, the same `url`, and
    /// the account key as payload.
    pub fn parse(value: &Value, url: &str, account_key: &Jwk) -> Result<Self, Problem> {
        let jws = flattened(value)?;
        let bad = |why: &str| Problem::malformed(format!("externalAccountBinding: {why}"));
        let alg = text(&jws.header, "alg")
            .and_then(|a| JwsAlg::parse(a).ok())
            .filter(|a| EAB_ALGS.contains(a))
            .ok_or_else(|| bad("alg must be HS256, HS384 or HS512"))?;
        if jws.header.contains_key("nonce") {
            return Err(bad("it has no nonce"));
        }
        if text(&jws.header, "url") != Some(url) {
            return Err(bad("its url is the newAccount URL"));
        }
        let kid = text(&jws.header, "kid")
            .filter(|k| !k.is_empty())
            .ok_or_else(|| bad("it names its key (kid)"))?
            .to_owned();
        let bound = serde_json::from_slice::<Value>(&jws.payload)
            .ok()
            .and_then(|v| Jwk::from_value(&v).ok())
            .and_then(|k| k.thumbprint().ok());
        if bound.is_none() || bound != account_key.thumbprint().ok() {
            return Err(bad("its payload is the account key"));
        }
        Ok(Self {
            kid,
            alg,
            input: jws.input,
            signature: jws.signature,
        })
    }

    /// Verifies the MAC with `key` (the decoded MAC key), in constant time.
    pub fn verify(&self, key: &[u8]) -> Result<(), Problem> {
        use aws_lc_rs::hmac;
        let algorithm = match self.alg {
            JwsAlg::HS384 => hmac::HMAC_SHA384,
            JwsAlg::HS512 => hmac::HMAC_SHA512,
            _ => hmac::HMAC_SHA256,
        };
        hmac::verify(
            &hmac::Key::new(algorithm, key),
            self.input.as_bytes(),
            &self.signature,
        )
        .map_err(|_| Problem::unauthorized("externalAccountBinding: the MAC does not verify"))
    }
}

/// The MAC key of an RA secret: the secret is base64url text, as EAB keys are handed out
/// (RFC 8555 §7.3.4), and the key is its bytes.
pub fn eab_key(secret: &str) -> Option<Zeroizing<Vec<u8>>> {
    b64::decode(secret, "EAB key").ok().map(Zeroizing::new)
}

/// The key authorization of `token` for the account key with `thumbprint` (RFC 8555 §8.1):
/// what an http-01 resource must hold.
pub fn key_authorization(token: &str, thumbprint: &str) -> String {
    format!("{token}.{thumbprint}")
}

/// Reads the `identifiers` of a newOrder payload: DNS names only (RFC 8555 §9.7.7), each a
/// lowercase hostname without wildcard (http-01 cannot prove a wildcard), no repeats.
pub fn identifiers(payload: &Map<String, Value>) -> Result<Vec<String>, Problem> {
    let list = payload
        .get("identifiers")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty() && l.len() <= MAX_IDENTIFIERS)
        .ok_or_else(|| Problem::malformed("identifiers: 1 to 100 of {\"type\", \"value\"}"))?;
    let mut names = Vec::with_capacity(list.len());
    for item in list {
        let kind = item.get("type").and_then(Value::as_str);
        let value = item.get("value").and_then(Value::as_str).unwrap_or("");
        if kind != Some("dns") {
            return Err(Problem::new(
                "unsupportedIdentifier",
                400,
                "only dns identifiers are supported",
            ));
        }
        let name = value.to_ascii_lowercase();
        if !dns_name(&name) {
            return Err(Problem::new(
                "rejectedIdentifier",
                400,
                format!("{value:?} is not a DNS name this server validates (no wildcards, no IP addresses)"),
            ));
        }
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// A hostname: labels of 1 to 63 of `a-z 0-9 -` (not starting or ending with `-`), at most 253
/// characters, not all digits and dots (an IPv4 address).
pub fn dns_name(name: &str) -> bool {
    name.len() <= 253
        && !name.is_empty()
        && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Whether `key` is the public key of certificate `cert_der` (RFC 8555 §7.6: a revocation
/// may be signed by the certificate's own key instead of an account's).
pub fn key_of_certificate(key: &Jwk, cert_der: &[u8]) -> bool {
    use crate::jose::jwk::KeyMaterial;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(cert_der) else {
        return false;
    };
    let spki = cert.public_key();
    let bits = spki.subject_public_key.data.as_ref();
    match key.material() {
        KeyMaterial::Ec { x, y, .. } => {
            let mut point = Vec::with_capacity(1 + x.len() + y.len());
            point.push(0x04);
            point.extend_from_slice(x);
            point.extend_from_slice(y);
            // The curve is implied: each has its own point length.
            spki.algorithm.algorithm.to_id_string() == "1.2.840.10045.2.1" && bits == point
        }
        KeyMaterial::Rsa { n, e, .. } => spki.raw == crate::jose::der::rsa_spki(n, e),
        KeyMaterial::Okp { x, .. } => {
            spki.algorithm.algorithm.to_id_string() == "1.3.101.112" && bits == x.as_slice()
        }
        KeyMaterial::Oct { .. } => false,
    }
}

/// `unix` (seconds) as RFC 3339 UTC text (`2026-12-05T13:17:21Z`), as ACME's `expires`.
pub fn rfc3339(unix: u64) -> String {
    let (days, secs) = (unix / 86_400, unix % 86_400);
    let (year, month, day) = crate::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::jws;
    use serde_json::json;

    fn flattened_request(key: &Jwk, header: Value, payload: &[u8]) -> Vec<u8> {
        let protected = b64::encode(header.to_string().as_bytes());
        let payload = b64::encode(payload);
        let signature = key
            .sign(format!("{protected}.{payload}").as_bytes())
            .unwrap();
        json!({"protected": protected, "payload": payload, "signature": b64::encode(&signature)})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn a_request_signed_with_its_jwk_verifies_and_a_changed_one_does_not() {
        let key = Jwk::generate(JwsAlg::ES256).unwrap();
        let public = key.to_public_value().unwrap();
        let header = json!({"alg": "ES256", "jwk": public, "nonce": "n1", "url": "https://ca/acme/x/new-account"});
        let body = flattened_request(&key, header.clone(), br#"{"termsOfServiceAgreed":true}"#);
        let request = Request::parse(&body).unwrap();
        let Signer::Key(jwk) = &request.signer else {
            panic!("a jwk signer")
        };
        request.verify(jwk).unwrap();
        assert_eq!(request.nonce, "n1");
        assert!(!request.is_get());
        // Another key does not verify it.
        let other = Jwk::generate(JwsAlg::ES256).unwrap().public().unwrap();
        assert_eq!(request.verify(&other).unwrap_err().kind, "malformed");
        // A payload changed after signing does not verify.
        let mut tampered: Value = serde_json::from_slice(&body).unwrap();
        tampered["payload"] = Value::String(b64::encode(b"{}"));
        let request = Request::parse(tampered.to_string().as_bytes()).unwrap();
        assert!(request.verify(jwk).is_err());
    }

    #[test]
    fn malformed_requests_are_refused_with_their_problem() {
        let key = Jwk::generate(JwsAlg::ES256).unwrap();
        let public = key.to_public_value().unwrap();
        let cases = [
            (
                json!({"alg": "ES256", "jwk": public, "url": "u"}),
                "badNonce",
            ),
            (
                json!({"alg": "ES256", "jwk": public, "nonce": "n"}),
                "malformed",
            ),
            (
                json!({"alg": "ES256", "jwk": public, "kid": "k", "nonce": "n", "url": "u"}),
                "malformed",
            ),
            (
                json!({"alg": "HS256", "kid": "k", "nonce": "n", "url": "u"}),
                "badSignatureAlgorithm",
            ),
            (
                json!({"alg": "none", "kid": "k", "nonce": "n", "url": "u"}),
                "badSignatureAlgorithm",
            ),
            (
                json!({"alg": "ES256", "kid": "k", "nonce": "n", "url": "u", "crit": ["x"]}),
                "malformed",
            ),
            (
                json!({"alg": "RS256", "jwk": public, "nonce": "n", "url": "u"}),
                "badPublicKey",
            ),
            (
                json!({"alg": "ES256", "jwk": key.to_private_value().map(|s| serde_json::from_str::<Value>(&s).unwrap()).unwrap(), "nonce": "n", "url": "u"}),
                "badPublicKey",
            ),
        ];
        for (header, kind) in cases {
            let body = flattened_request(&key, header.clone(), b"");
            assert_eq!(Request::parse(&body).unwrap_err().kind, kind, "{header}");
        }
        // Not flattened, or with an unprotected header.
        let compact = jws::sign_compact(
            &key.clone().pinned(JwsAlg::ES256).unwrap(),
            b"{}",
            &Map::new(),
        )
        .unwrap();
        assert_eq!(
            Request::parse(compact.as_bytes()).unwrap_err().kind,
            "malformed"
        );
        let mut body: Value = serde_json::from_slice(&flattened_request(
            &key,
            json!({"alg": "ES256", "kid": "k", "nonce": "n", "url": "u"}),
            b"",
        ))
        .unwrap();
        body["header"] = json!({"kid": "x"});
        assert_eq!(
            Request::parse(body.to_string().as_bytes())
                .unwrap_err()
                .kind,
            "malformed"
        );
        assert_eq!(
            Request::parse(&vec![b' '; MAX_REQUEST + 1])
                .unwrap_err()
                .kind,
            "malformed"
        );
    }

    #[test]
    fn an_external_account_binding_verifies_only_with_its_key_and_account() {
        let account = Jwk::generate(JwsAlg::ES256).unwrap();
        let public = account.public().unwrap();
        let secret = crate::oauth::random_token(32).unwrap();
        let key = eab_key(&secret).unwrap();
        let url = "https://ca/acme/x/new-account";
        let mac = |header: Value, payload: &[u8], key: &[u8]| {
            let protected = b64::encode(header.to_string().as_bytes());
            let payload = b64::encode(payload);
            let tag = aws_lc_rs::hmac::sign(
                &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key),
                format!("{protected}.{payload}").as_bytes(),
            );
            json!({"protected": protected, "payload": payload, "signature": b64::encode(tag.as_ref())})
        };
        let jwk_json = public.to_public_value().unwrap().to_string();
        let good = mac(
            json!({"alg": "HS256", "kid": "ra-1", "url": url}),
            jwk_json.as_bytes(),
            &key,
        );
        let binding = Binding::parse(&good, url, &public).unwrap();
        assert_eq!(binding.kid, "ra-1");
        binding.verify(&key).unwrap();
        assert_eq!(
            binding.verify(b"another key").unwrap_err().kind,
            "unauthorized"
        );
        // Another account's key, another URL, a nonce: refused before any MAC.
        let other = Jwk::generate(JwsAlg::ES256).unwrap().public().unwrap();
        assert!(Binding::parse(&good, url, &other).is_err());
        assert!(Binding::parse(&good, "https://elsewhere", &public).is_err());
        let with_nonce = mac(
            json!({"alg": "HS256", "kid": "ra-1", "url": url, "nonce": "n"}),
            jwk_json.as_bytes(),
            &key,
        );
        assert!(Binding::parse(&with_nonce, url, &public).is_err());
        let signed = mac(
            json!({"alg": "ES256", "kid": "ra-1", "url": url}),
            jwk_json.as_bytes(),
            &key,
        );
        assert!(Binding::parse(&signed, url, &public).is_err());
    }

    #[test]
    fn a_certificate_is_matched_to_its_own_key_only() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.example.test".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let spki = key.public_key_raw();
        let (x, y) = spki.get(1..).unwrap().split_at(32);
        let jwk = Jwk::from_value(&serde_json::json!({
            "kty": "EC", "crv": "P-256", "x": b64::encode(x), "y": b64::encode(y)
        }))
        .unwrap();
        assert!(key_of_certificate(&jwk, cert.der()));
        let other = Jwk::generate(JwsAlg::ES256).unwrap().public().unwrap();
        assert!(!key_of_certificate(&other, cert.der()));
        assert!(!key_of_certificate(&jwk, b"not a certificate"));
    }

    #[test]
    fn identifiers_are_dns_names_without_wildcards_or_addresses() {
        let ok = json!({"identifiers": [{"type": "dns", "value": "WWW.Example.test"}, {"type": "dns", "value": "www.example.test"}, {"type": "dns", "value": "localhost"}]});
        assert_eq!(
            identifiers(ok.as_object().unwrap()).unwrap(),
            ["www.example.test", "localhost"]
        );
        for (bad, kind) in [
            (json!({"identifiers": []}), "malformed"),
            (json!({}), "malformed"),
            (
                json!({"identifiers": [{"type": "ip", "value": "127.0.0.1"}]}),
                "unsupportedIdentifier",
            ),
            (
                json!({"identifiers": [{"type": "dns", "value": "*.example.test"}]}),
                "rejectedIdentifier",
            ),
            (
                json!({"identifiers": [{"type": "dns", "value": "127.0.0.1"}]}),
                "rejectedIdentifier",
            ),
            (
                json!({"identifiers": [{"type": "dns", "value": "-a.test"}]}),
                "rejectedIdentifier",
            ),
            (
                json!({"identifiers": [{"type": "dns", "value": "a..test"}]}),
                "rejectedIdentifier",
            ),
        ] {
            assert_eq!(
                identifiers(bad.as_object().unwrap()).unwrap_err().kind,
                kind,
                "{bad}"
            );
        }
        assert_eq!(key_authorization("tok", "thumb"), "tok.thumb");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_390_241), "2026-12-04T13:17:21Z");
        assert_eq!(
            Problem::bad_nonce().document()["type"],
            "urn:ietf:params:acme:error:badNonce"
        );
    }
}
