//! DPoP (RFC 9449): checking a proof of possession a client sends in the `DPoP` header, and the
//! thumbprint (`jkt`) that binds tokens to its key. Pure: the caller supplies the time and
//! remembers the `jti`s it has seen.

use serde_json::Value;

use crate::jose::{b64, jws, Jwk, JwsAlg};
use crate::oauth::token_digest;

/// Algorithms accepted on proofs: asymmetric only (RFC 9449 §4.2).
pub const PROOF_ALGS: [JwsAlg; 10] = {
    use JwsAlg::*;
    [
        ES256, ES384, ES512, PS256, PS384, PS512, RS256, RS384, RS512, EdDSA,
    ]
};
/// Largest proof accepted.
const MAX_PROOF: usize = 8 * 1024;

/// A verified proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// RFC 7638 thumbprint of the proof's key.
    pub jkt: String,
    /// The proof's unique id (to be refused if seen again).
    pub jti: String,
    /// When it was made.
    pub iat: u64,
}

/// Why a proof is refused (the answer is `invalid_dpop_proof` either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid DPoP proof: {0}")]
pub struct ProofError(pub &'static str);

/// What a proof must match.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// The request's method.
    pub htm: &'a str,
    /// The request's URI without query and fragment.
    pub htu: &'a str,
    /// The access token it accompanies (its hash must be `ath`), at a resource server.
    pub access_token: Option<&'a str>,
    /// Now (Unix seconds).
    pub now: u64,
    /// How old a proof may be, and how far in the future (clock skew).
    pub window: u64,
}

/// `https://host:port/path` of a URI, without query and fragment, for `htu` comparison
/// (RFC 9449 §4.3: compared without them; scheme and host are case-insensitive).
pub fn normalize_htu(uri: &str) -> String {
    let cut = uri.find(['?', '#']).unwrap_or(uri.len());
    let uri = uri.get(..cut).unwrap_or(uri);
    match uri.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let path = if path.is_empty() { "/" } else { path };
            format!(
                "{}://{}{}",
                scheme.to_ascii_lowercase(),
                authority.to_ascii_lowercase(),
                path
            )
        }
        None => uri.to_owned(),
    }
}

/// RFC 9449 §4.3: `typ` dpop+jwt, an asymmetric `alg`, a public `jwk` in the header that
/// verifies the signature, `htm` and `htu` of this request, `iat` inside the window, a `jti`,
/// and at a resource server `ath` = base64url(SHA-256(access token)).
pub fn verify(proof: &str, expect: &Expect<'_>) -> Result<Proof, ProofError> {
    if proof.len() > MAX_PROOF {
        return Err(ProofError("too large"));
    }
    let header: Value = proof
        .split('.')
        .next()
        .and_then(|h| b64::decode(h, "DPoP header").ok())
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or(ProofError("malformed header"))?;
    if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(ProofError("typ must be dpop+jwt"));
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(|a| JwsAlg::parse(a).ok())
        .filter(|a| PROOF_ALGS.contains(a))
        .ok_or(ProofError("alg must be asymmetric"))?;
    let jwk = header
        .get("jwk")
        .filter(|j| j.get("d").is_none() && j.get("k").is_none())
        .and_then(|j| Jwk::from_value(j).ok())
        .filter(|k| !k.is_private())
        .ok_or(ProofError("jwk must be a public key"))?;
    let jwk = Jwk::from_material(jwk.material().clone())
        .pinned(alg)
        .map_err(|_| ProofError("jwk does not fit alg"))?;
    let verified =
        jws::verify_compact(proof, &jwk, &[alg]).map_err(|_| ProofError("bad signature"))?;
    let claims: Value =
        serde_json::from_slice(&verified.payload).map_err(|_| ProofError("malformed claims"))?;
    let text = |n: &str| claims.get(n).and_then(Value::as_str);
    if text("htm") != Some(expect.htm) {
        return Err(ProofError("htm does not match the request"));
    }
    if text("htu").map(normalize_htu) != Some(normalize_htu(expect.htu)) {
        return Err(ProofError("htu does not match the request"));
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_u64)
        .ok_or(ProofError("iat missing"))?;
    if iat + expect.window < expect.now || iat > expect.now + expect.window {
        return Err(ProofError("iat outside the accepted window"));
    }
    let jti = text("jti")
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or(ProofError("jti missing"))?;
    if let Some(token) = expect.access_token {
        let ath = b64::encode(&token_digest(token.as_bytes()));
        if text("ath") != Some(ath.as_str()) {
            return Err(ProofError("ath does not match the access token"));
        }
    }
    Ok(Proof {
        jkt: jwk.thumbprint().map_err(|_| ProofError("jwk"))?,
        jti: jti.to_owned(),
        iat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Map};

    fn proof(key: &Jwk, claims: Value, typ: &str) -> String {
        let mut h = Map::new();
        h.insert("typ".into(), json!(typ));
        h.insert(
            "jwk".into(),
            key.public().unwrap().to_public_value().unwrap(),
        );
        jws::sign_compact(key, claims.to_string().as_bytes(), &h).unwrap()
    }

    const NOW: u64 = 1_800_000_000;

    fn expect<'a>(token: Option<&'a str>) -> Expect<'a> {
        Expect {
            htm: "POST",
            htu: "https://as.test/token",
            access_token: token,
            now: NOW,
            window: 60,
        }
    }

    #[test]
    fn a_proof_binds_method_uri_time_and_token_to_its_key() {
        let key = Jwk::generate(JwsAlg::ES256).unwrap();
        let claims =
            json!({"jti": "j1", "htm": "POST", "htu": "https://AS.test/token?x=1", "iat": NOW});
        let p = verify(&proof(&key, claims.clone(), "dpop+jwt"), &expect(None)).unwrap();
        assert_eq!(p.jkt, key.thumbprint().unwrap());
        assert_eq!(p.jti, "j1");

        let bad = |c: Value, typ: &str, t: Option<&str>| verify(&proof(&key, c, typ), &expect(t));
        assert!(bad(claims.clone(), "jwt", None).is_err(), "typ");
        let mut c = claims.clone();
        c["htm"] = json!("GET");
        assert!(bad(c, "dpop+jwt", None).is_err(), "htm");
        let mut c = claims.clone();
        c["htu"] = json!("https://as.test/other");
        assert!(bad(c, "dpop+jwt", None).is_err(), "htu");
        let mut c = claims.clone();
        c["iat"] = json!(NOW - 61);
        assert!(bad(c, "dpop+jwt", None).is_err(), "too old");
        let mut c = claims.clone();
        c["iat"] = json!(NOW + 61);
        assert!(bad(c, "dpop+jwt", None).is_err(), "future");
        let mut c = claims.clone();
        c.as_object_mut().unwrap().remove("jti");
        assert!(bad(c, "dpop+jwt", None).is_err(), "jti");
        // At a resource server: ath must hash the presented token.
        let mut c = claims.clone();
        c["ath"] = json!(b64::encode(&token_digest(b"the-token")));
        assert!(bad(c.clone(), "dpop+jwt", Some("the-token")).is_ok());
        assert!(bad(c, "dpop+jwt", Some("another-token")).is_err(), "ath");
        assert!(
            bad(claims.clone(), "dpop+jwt", Some("the-token")).is_err(),
            "ath missing"
        );
        // An HMAC key is refused.
        let hs = Jwk::generate(JwsAlg::HS256).unwrap();
        let mut h = Map::new();
        h.insert("typ".into(), json!("dpop+jwt"));
        h.insert("jwk".into(), json!({"kty": "oct", "k": "AAAA"}));
        let p = jws::sign_compact(&hs, claims.to_string().as_bytes(), &h).unwrap();
        assert!(verify(&p, &expect(None)).is_err());
        // A signature by another key than the header's.
        let other = Jwk::generate(JwsAlg::ES256).unwrap();
        let good = proof(&key, claims.clone(), "dpop+jwt");
        let forged = proof(&other, claims, "dpop+jwt");
        let spliced = format!(
            "{}.{}",
            good.rsplit_once('.').unwrap().0,
            forged.rsplit_once('.').unwrap().1
        );
        assert!(verify(&spliced, &expect(None)).is_err());
    }
}
