//! OAuth 2.1 pieces that need no I/O: client secrets (server-generated, stored as HMAC-SHA256
//! under a pepper), human password hashes (PBKDF2-HMAC-SHA256), client authentication headers
//! (RFC 6749 §2.3.1), scope strings (§3.3), PKCE S256 (RFC 7636) and the token endpoint's error
//! codes (§5.2).

use std::num::NonZeroU32;

use aws_lc_rs::{constant_time, hmac, pbkdf2, rand};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use zeroize::Zeroizing;

/// Bytes of a client secret (256 bits).
pub const CLIENT_SECRET_BYTES: usize = 32;
/// PBKDF2 iterations for human passwords (the FIPS-era floor this project sets is 600,000).
pub const PASSWORD_ITERATIONS: u32 = 600_000;
/// Longest client id, secret, username or password accepted (bounds work on hostile input).
pub const MAX_CREDENTIAL_LEN: usize = 512;

/// A new random value of `bytes` bytes, base64url (client secrets, ids, passwords).
pub fn random_token(bytes: usize) -> Result<Zeroizing<String>, crate::Error> {
    let mut raw = Zeroizing::new(vec![0u8; bytes]);
    rand::fill(&mut raw).map_err(|_| crate::Error::Random)?;
    Ok(Zeroizing::new(URL_SAFE_NO_PAD.encode(&*raw)))
}

/// HMAC-SHA256 of a client secret under the pepper: what is stored (secrets are 256-bit random
/// values, so a fast keyed hash is safe; the pepper lives outside the store).
pub fn client_secret_mac(pepper: &[u8], secret: &str) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, pepper);
    let tag = hmac::sign(&key, secret.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Does `secret` match the stored `mac`? Constant time in the secret's content.
pub fn client_secret_matches(pepper: &[u8], secret: &str, mac: &[u8; 32]) -> bool {
    constant_time::verify_slices_are_equal(&client_secret_mac(pepper, secret), mac).is_ok()
}

/// SHA-256 of a token: the key of caches and lookups (never the token itself).
pub fn token_digest(token: &[u8]) -> [u8; 32] {
    crate::sha256(token)
}

/// A stored password hash: `pbkdf2-sha256$<iterations>$<salt b64url>$<hash b64url>`.
pub fn hash_password(password: &str, iterations: u32) -> Result<String, crate::Error> {
    let iterations =
        NonZeroU32::new(iterations.max(PASSWORD_ITERATIONS)).ok_or(crate::Error::Random)?;
    let mut salt = [0u8; 16];
    rand::fill(&mut salt).map_err(|_| crate::Error::Random)?;
    let mut hash = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        password.as_bytes(),
        &mut hash,
    );
    Ok(format!(
        "pbkdf2-sha256${iterations}${}${}",
        URL_SAFE_NO_PAD.encode(salt),
        URL_SAFE_NO_PAD.encode(hash)
    ))
}

/// Does `password` match `stored` (from [`hash_password`])? Malformed records never match.
pub fn password_matches(password: &str, stored: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some("pbkdf2-sha256"), Some(iterations), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Some(iterations), Ok(salt), Ok(hash)) = (
        iterations.parse::<u32>().ok().and_then(NonZeroU32::new),
        URL_SAFE_NO_PAD.decode(salt),
        URL_SAFE_NO_PAD.decode(hash),
    ) else {
        return false;
    };
    pbkdf2::verify(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        password.as_bytes(),
        &hash,
    )
    .is_ok()
}

/// Client credentials from `Authorization: Basic` (RFC 6749 §2.3.1: id and secret are
/// form-urlencoded before base64). `None` for another scheme or a malformed value.
pub fn basic_credentials(header: &str) -> Option<(String, Zeroizing<String>)> {
    let (scheme, b64) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") || b64.len() > 4 * MAX_CREDENTIAL_LEN {
        return None;
    }
    let decoded = Zeroizing::new(STANDARD.decode(b64.trim()).ok()?);
    let text = std::str::from_utf8(&decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let id = form_decode(id)?;
    let secret = Zeroizing::new(form_decode(secret)?);
    (!id.is_empty()).then_some((id, secret))
}

/// `application/x-www-form-urlencoded` decoding of one component.
fn form_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Splits a `scope` parameter into scope tokens (RFC 6749 §3.3: space-delimited, each token
/// printable ASCII without `"` or `\`). `None` when a token is invalid.
pub fn parse_scope(scope: &str) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for token in scope.split(' ').filter(|t| !t.is_empty()) {
        let valid = token
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
        if !valid || token.len() > 128 {
            return None;
        }
        if !out.iter().any(|t| t == token) {
            out.push(token.to_owned());
        }
    }
    Some(out)
}

/// RFC 7636 §4.1: a code verifier is 43 to 128 unreserved characters.
pub fn valid_code_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The PKCE method of an authorization request: only `S256` (OAuth 2.1 and RFC 9700 refuse
/// `plain`, and a missing `code_challenge_method` means `plain`).
pub fn pkce_method_accepted(method: Option<&str>) -> bool {
    method == Some("S256")
}

/// An `S256` code challenge: base64url of a SHA-256, 43 characters.
pub fn valid_code_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && URL_SAFE_NO_PAD
            .decode(challenge)
            .is_ok_and(|d| d.len() == 32)
}

/// RFC 7636 §4.6: does `verifier` hash to `challenge` (S256)? Constant time in the values.
pub fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    if !valid_code_verifier(verifier) || !valid_code_challenge(challenge) {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(token_digest(verifier.as_bytes()));
    constant_time::verify_slices_are_equal(computed.as_bytes(), challenge.as_bytes()).is_ok()
}

/// Fills `out` with random bytes from the approved DRBG.
pub fn fill_random(out: &mut [u8]) -> Result<(), crate::Error> {
    rand::fill(out).map_err(|_| crate::Error::Random)
}

/// Equality of two secrets' encodings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// An `Authorization: Basic` value for client credentials (RFC 6749 §2.3.1: each part
/// form-encoded first).
pub fn basic_header(client_id: &str, secret: &str) -> Zeroizing<String> {
    let joined = Zeroizing::new(format!(
        "{}:{}",
        form_encode(client_id),
        form_encode(secret)
    ));
    Zeroizing::new(format!("Basic {}", STANDARD.encode(joined.as_bytes())))
}

/// OpenID Connect Core §3.1.3.6 `at_hash` for an ES256/PS256/RS256-signed ID token: base64url
/// of the left half of the access token's SHA-256.
pub fn at_hash(access_token: &str) -> String {
    let digest = token_digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

/// A redirect URI a client may register (RFC 9700 §4.1, OAuth 2.1 §2.3.1): absolute, `https`,
/// or `http` on a loopback host for native apps; no fragment, no user information, no spaces;
/// at most 512 bytes. Matching against a registered URI is then exact string comparison.
pub fn valid_redirect_uri(uri: &str) -> bool {
    if uri.len() > 512 || uri.contains('#') || uri.bytes().any(|b| b <= b' ' || b >= 0x7f) {
        return false;
    }
    let Some((scheme, rest)) = uri.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    // Host names, IPv4, bracketed IPv6 and a port only: the origin ends up in a CSP header.
    let authority_ok = authority
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if authority.is_empty() || !authority_ok {
        return false;
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    match scheme {
        "https" => !host.is_empty(),
        "http" => matches!(host, "127.0.0.1" | "::1" | "localhost"),
        _ => false,
    }
}

/// `uri` with `params` appended to its query (`?` or `&`), form-encoded.
pub fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(uri.len() + 64);
    out.push_str(uri);
    let mut sep = if uri.contains('?') { '&' } else { '?' };
    for (name, value) in params {
        out.push(sep);
        sep = '&';
        out.push_str(&form_encode(name));
        out.push('=');
        out.push_str(&form_encode(value));
    }
    out
}

/// `application/x-www-form-urlencoded` encoding of one name or value.
pub fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Authorization endpoint errors (RFC 6749 §4.1.2.1), sent to the client's redirect URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizeError {
    /// Missing, repeated or malformed parameter (PKCE missing or not S256 included).
    InvalidRequest,
    /// The client may not use the code flow.
    UnauthorizedClient,
    /// The user (or the server for them) refused.
    AccessDenied,
    /// Only `code` is supported.
    UnsupportedResponseType,
    /// A scope the client may not have.
    InvalidScope,
    /// `prompt=none` and nobody is signed in.
    LoginRequired,
    /// `prompt=none` and the user has not consented to the client's request.
    ConsentRequired,
    /// Something failed on our side.
    ServerError,
}

impl AuthorizeError {
    /// The registered error code.
    pub fn code(self) -> &'static str {
        match self {
            AuthorizeError::InvalidRequest => "invalid_request",
            AuthorizeError::UnauthorizedClient => "unauthorized_client",
            AuthorizeError::AccessDenied => "access_denied",
            AuthorizeError::UnsupportedResponseType => "unsupported_response_type",
            AuthorizeError::InvalidScope => "invalid_scope",
            AuthorizeError::LoginRequired => "login_required",
            AuthorizeError::ConsentRequired => "consent_required",
            AuthorizeError::ServerError => "server_error",
        }
    }
}

/// Token endpoint errors (RFC 6749 §5.2, RFC 8707 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Missing or malformed parameter.
    InvalidRequest,
    /// Client authentication failed (answered 401).
    InvalidClient,
    /// A code, refresh token or credential is invalid, expired or revoked.
    InvalidGrant,
    /// The client may not use this grant type.
    UnauthorizedClient,
    /// The grant type is not supported.
    UnsupportedGrantType,
    /// A requested scope is unknown or not allowed to the client.
    InvalidScope,
    /// The `resource` names no audience the client may have.
    InvalidTarget,
    /// The DPoP proof is missing where required, malformed, replayed or for another key
    /// (RFC 9449 §5).
    InvalidDpopProof,
}

impl TokenError {
    /// The registered error code.
    pub fn code(self) -> &'static str {
        match self {
            TokenError::InvalidRequest => "invalid_request",
            TokenError::InvalidClient => "invalid_client",
            TokenError::InvalidGrant => "invalid_grant",
            TokenError::UnauthorizedClient => "unauthorized_client",
            TokenError::UnsupportedGrantType => "unsupported_grant_type",
            TokenError::InvalidScope => "invalid_scope",
            TokenError::InvalidTarget => "invalid_target",
            TokenError::InvalidDpopProof => "invalid_dpop_proof",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_https_or_loopback_http_without_fragments() {
        for ok in [
            "https://rp.example/cb",
            "https://rp.example:8443/cb?x=1",
            "http://127.0.0.1:53127/cb",
            "http://[::1]:8080/cb",
            "http://localhost/cb",
            "https://[2001:db8::1]/cb",
        ] {
            assert!(valid_redirect_uri(ok), "{ok}");
        }
        for bad in [
            "",
            "/cb",
            "rp.example/cb",
            "http://rp.example/cb",
            "https://rp.example/cb#frag",
            "https://user@rp.example/cb",
            "https:///cb",
            "javascript://x/%0aalert(1)",
            "https://rp.example/a b",
            "custom://app/cb",
            "https://rp.example;script-src/cb",
            "https://rp_example/cb",
        ] {
            assert!(!valid_redirect_uri(bad), "{bad}");
        }
    }

    #[test]
    fn basic_headers_round_trip_through_the_parser() {
        let h = basic_header("client:1", "s3cr+t %");
        let (id, secret) = basic_credentials(&h).unwrap();
        assert_eq!((id.as_str(), secret.as_str()), ("client:1", "s3cr+t %"));
    }

    #[test]
    fn at_hash_matches_oidc_core_example() {
        // OpenID Connect Core 1.0 Appendix A.3/A.4: access token and its at_hash (RS256).
        assert_eq!(
            at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }

    #[test]
    fn query_parameters_are_appended_form_encoded() {
        assert_eq!(
            with_query("https://rp/cb", &[("code", "a b"), ("state", "x&y=z")]),
            "https://rp/cb?code=a+b&state=x%26y%3Dz"
        );
        assert_eq!(
            with_query("https://rp/cb?k=1", &[("c", "~")]),
            "https://rp/cb?k=1&c=%7E"
        );
    }

    #[test]
    fn client_secrets_are_peppered_macs_compared_whole() {
        let secret = random_token(CLIENT_SECRET_BYTES).unwrap();
        assert_eq!(secret.len(), 43, "256 bits, base64url");
        let mac = client_secret_mac(b"pepper-1", &secret);
        assert!(client_secret_matches(b"pepper-1", &secret, &mac));
        assert!(
            !client_secret_matches(b"pepper-2", &secret, &mac),
            "the pepper is part of the key"
        );
        assert!(!client_secret_matches(b"pepper-1", &secret[..42], &mac));
        assert_ne!(secret, random_token(CLIENT_SECRET_BYTES).unwrap());
    }

    #[test]
    fn passwords_use_pbkdf2_with_at_least_600k_iterations() {
        // The floor applies even when a caller asks for fewer.
        let stored = hash_password("correct horse", 1000).unwrap();
        assert!(stored.starts_with("pbkdf2-sha256$600000$"), "{stored}");
        assert!(password_matches("correct horse", &stored));
        assert!(!password_matches("correct horsE", &stored));
        assert_ne!(
            stored,
            hash_password("correct horse", 1000).unwrap(),
            "salted"
        );
        for bad in [
            "",
            "pbkdf2-sha256$0$AA$AA",
            "md5$1$a$b",
            "pbkdf2-sha256$600000$!!$AA",
        ] {
            assert!(!password_matches("x", bad), "{bad}");
        }
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        // RFC 6749 §2.3.1: "client id:secret" with each part form-urlencoded.
        let header = format!("Basic {}", STANDARD.encode("my%3Aclient:s%2Bc+ret%25"));
        let (id, secret) = basic_credentials(&header).unwrap();
        assert_eq!((id.as_str(), secret.as_str()), ("my:client", "s+c ret%"));
        for bad in [
            "Bearer abc",
            "Basic !!!",
            &format!("Basic {}", STANDARD.encode("no-colon")),
            &format!("Basic {}", STANDARD.encode(":secret")),
            &format!("Basic {}", STANDARD.encode("id:%zz")),
        ] {
            assert!(basic_credentials(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn pkce_s256_matches_the_rfc7636_appendix_b_example_and_nothing_else() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_s256_matches(verifier, challenge));
        assert!(!pkce_s256_matches(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"
        ));
        assert!(!pkce_s256_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK",
            challenge
        ));
        // `plain` would accept the verifier as its own challenge: it is not a method we take.
        assert!(!pkce_s256_matches(verifier, verifier));
        assert!(pkce_method_accepted(Some("S256")));
        for refused in [None, Some("plain"), Some("s256"), Some("")] {
            assert!(!pkce_method_accepted(refused), "{refused:?}");
        }
        assert!(!valid_code_verifier(&"a".repeat(42)));
        assert!(valid_code_verifier(&"a".repeat(128)));
        assert!(!valid_code_verifier(&"a".repeat(129)));
        assert!(!valid_code_verifier(&format!("{}+", "a".repeat(50))));
        assert!(!valid_code_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c"
        ));
    }

    #[test]
    fn scopes_are_space_delimited_tokens() {
        assert_eq!(parse_scope(" kms  jose kms ").unwrap(), vec!["kms", "jose"]);
        assert_eq!(parse_scope("").unwrap(), Vec::<String>::new());
        assert!(parse_scope("a\"b").is_none());
        assert!(parse_scope("a\\b").is_none());
        assert!(parse_scope("caf\u{e9}").is_none());
    }
}
