//! DPoP on requests (RFC 9449): the request's own URI (`htu`) and the verified proof of its
//! `DPoP` header, for the token endpoint and for every service's bearer check.

use axum::http::{header, HeaderMap};

/// The request's own URI as the client addressed it (`htu`): the `:authority` of HTTP/2 or the
/// `Host` of HTTP/1.1, and the path.
pub(crate) fn request_url(headers: &HeaderMap, uri: &axum::http::Uri) -> Option<String> {
    Some(format!(
        "https://{}{}",
        authority(headers, uri)?,
        uri.path()
    ))
}

/// The authority the client addressed: the `:authority` of HTTP/2 or the `Host` of HTTP/1.1.
pub(crate) fn authority(headers: &HeaderMap, uri: &axum::http::Uri) -> Option<String> {
    uri.authority().map(|a| a.as_str().to_owned()).or_else(|| {
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
    })
}

/// The request's DPoP proof, verified (RFC 9449 §4.3), if it carries one: exactly one `DPoP`
/// header, for this method and URI (and `access_token`, at a resource server).
pub(crate) fn proof(
    headers: &HeaderMap,
    uri: &axum::http::Uri,
    method: &str,
    access_token: Option<&str>,
) -> Result<Option<cryptoutil_protocols::dpop::Proof>, &'static str> {
    let mut values = headers.get_all("dpop").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err("one DPoP header only");
    }
    let proof = value.to_str().map_err(|_| "malformed DPoP header")?;
    let htu = request_url(headers, uri).ok_or("no request authority")?;
    let now = cryptoutil_actors::now_unix();
    let expect = cryptoutil_protocols::dpop::Expect {
        htm: method,
        htu: &htu,
        access_token,
        now,
        window: cryptoutil_actors::identity::authz::DPOP_WINDOW,
    };
    cryptoutil_protocols::dpop::verify(proof, &expect)
        .map(Some)
        .map_err(|e| e.0)
}
