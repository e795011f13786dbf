//! identity-idp's account page (`/browser/account`): the signed-in user's own factors, listed,
//! added (a passkey or a security key, through a WebAuthn registration) and removed. It is
//! reached with identity-idp's own sign-in session cookie, the one its login page sets (no
//! access token: the user manages what they sign in with, at the place they sign in). Changes
//! need a sign-in of the last 15 minutes and a double-submit CSRF token of their own cookie;
//! every change is audited by the factor records.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use cryptoutil_actors::identity::idp::factors::FactorKind;
use cryptoutil_actors::identity::idp::IdpHandle;
use cryptoutil_protocols::oauth;
use cryptoutil_protocols::webauthn::Kind;
use serde_json::{Map, Value};
use zeroize::{Zeroize, Zeroizing};

use super::login::{
    cookie_header, login_handle, same_origin, Fields, IDP_SESSION_COOKIE, WEBAUTHN_SCRIPT,
};
use super::webauthn::options_answer;
use crate::error::ApiError;
use crate::pages::{bad_request, cookie, esc, is_form, page, params, see_other};
use crate::state::AppState;

/// The account page.
pub const ACCOUNT: &str = "/browser/account";
/// Where its script fetches a registration's options.
pub const ACCOUNT_WEBAUTHN_OPTIONS: &str = "/browser/account/webauthn/options";
/// Where a registration is posted.
pub const ACCOUNT_WEBAUTHN: &str = "/browser/account/webauthn";
/// Where a factor's removal is posted.
pub const ACCOUNT_REMOVE: &str = "/browser/account/remove";
/// Where an authenticator app's enrollment is posted (the answer shows its QR code once).
pub const ACCOUNT_TOTP: &str = "/browser/account/totp";
/// Where a YubiKey's Yubico OTP slot is imported.
pub const ACCOUNT_YUBIKEY: &str = "/browser/account/yubikey";
/// Where a set of recovery codes is asked for (the answer shows them once).
pub const ACCOUNT_RECOVERY: &str = "/browser/account/recovery";
/// The account page's double-submit CSRF cookie (its own: an open login form keeps its token).
pub const ACCOUNT_CSRF_COOKIE: &str = "__Host-cryptoutil-idp-account-csrf";

fn session(headers: &HeaderMap) -> Option<Zeroizing<String>> {
    cookie(headers, IDP_SESSION_COOKIE).map(|c| Zeroizing::new(c.to_owned()))
}

fn signed_out() -> Response {
    page(
        StatusCode::UNAUTHORIZED,
        "Your sign-in factors",
        &format!(
            "<p id=\"status\">You are not signed in here. <a href=\"/browser/auth/login?return_to={}\">Sign in</a> \
             to manage your passkeys and security keys.</p>",
            esc(&oauth::form_encode(ACCOUNT))
        ),
    )
}

/// `GET /browser/account`: the user's factors and the forms that change them.
pub(crate) async fn account_get(
    State(app): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let handle = match login_handle(&app) {
        Ok(h) => h,
        Err(r) => return *r,
    };
    let Some(cookie) = session(&headers) else {
        return signed_out();
    };
    let subject = match handle.account(cookie).await {
        Ok(Some(s)) => s,
        Ok(None) => return signed_out(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let factors = match handle.own_factors(&subject).await {
        Ok(f) => f,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let Ok(csrf) = oauth::random_token(32) else {
        return page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Unavailable",
            "<p>Try again.</p>",
        );
    };
    let message = params(uri.query().unwrap_or_default().as_bytes())
        .and_then(|p| crate::pages::get(&p, "done").map(str::to_owned))
        .map(|d| match d.as_str() {
            "added" => "<p role=\"status\" id=\"message\">Added.</p>",
            "removed" => "<p role=\"status\" id=\"message\">Removed.</p>",
            _ => "",
        })
        .unwrap_or_default();
    let rows: String = factors
        .iter()
        .map(|f| {
            format!(
                "<li data-type=\"{kind}\"><span class=\"factor-name\">{name}</span> ({kind}) \
                 <form method=\"post\" action=\"{ACCOUNT_REMOVE}\" class=\"inline\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                 <input type=\"hidden\" name=\"id\" value=\"{id}\">\
                 <button type=\"submit\" class=\"remove\">Remove</button></form></li>",
                kind = esc(f.kind.name()),
                name = esc(&f.name),
                id = esc(&f.id),
                csrf = csrf.as_str(),
            )
        })
        .collect();
    let body = format!(
        "<p>Signed in as <strong id=\"username\">{user}</strong> (tenant <strong>{tenant}</strong>).</p>{message}\
         <h2>Your factors</h2><ul id=\"factors\"><li data-type=\"password\">Password</li>{rows}</ul>\
         <h2>Add a passkey or a security key</h2>\
         <form method=\"post\" action=\"{ACCOUNT_WEBAUTHN}\" id=\"webauthn-form\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"credential\" value=\"\">\
         <input type=\"hidden\" name=\"kind\" value=\"passkey\">\
         <p><label for=\"name\">Name</label><br>\
         <input id=\"name\" name=\"name\" required maxlength=\"64\" value=\"My passkey\"></p>\
         <p><button type=\"button\" id=\"add-passkey\" data-webauthn=\"create\" data-kind=\"passkey\" \
         data-options=\"{ACCOUNT_WEBAUTHN_OPTIONS}\" data-form=\"webauthn-form\" hidden>Add a passkey</button> \
         <button type=\"button\" id=\"add-security-key\" data-webauthn=\"create\" data-kind=\"security-key\" \
         data-options=\"{ACCOUNT_WEBAUTHN_OPTIONS}\" data-form=\"webauthn-form\" hidden>Add a security key</button></p>\
         <p id=\"webauthn-message\" role=\"status\"></p></form>\
         <h2>Add an authenticator app</h2>\
         <form method=\"post\" action=\"{ACCOUNT_TOTP}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <p><label for=\"totp-name\">Name</label><br>\
         <input id=\"totp-name\" name=\"name\" required maxlength=\"64\" value=\"Authenticator app\"></p>\
         <p><button type=\"submit\" id=\"add-totp\">Add an authenticator app</button></p></form>\
         <h2>Add a YubiKey (Yubico OTP)</h2>\
         <p>What <code>ykman otp yubiotp</code> printed when the slot was programmed, and one OTP: \
         touch the key in the last field.</p>\
         <form method=\"post\" action=\"{ACCOUNT_YUBIKEY}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <p><label for=\"yubikey-name\">Name</label><br>\
         <input id=\"yubikey-name\" name=\"name\" required maxlength=\"64\" value=\"YubiKey\"></p>\
         <p><label for=\"public-id\">Public ID (modhex)</label><br>\
         <input id=\"public-id\" name=\"public_id\" required maxlength=\"32\" autocomplete=\"off\"></p>\
         <p><label for=\"private-id\">Private ID (hex)</label><br>\
         <input id=\"private-id\" name=\"private_id\" required maxlength=\"12\" autocomplete=\"off\"></p>\
         <p><label for=\"aes-key\">Secret key (hex)</label><br>\
         <input id=\"aes-key\" name=\"aes_key\" type=\"password\" required maxlength=\"32\" autocomplete=\"off\"></p>\
         <p><label for=\"yubikey-otp\">OTP</label><br>\
         <input id=\"yubikey-otp\" name=\"otp\" required maxlength=\"64\" autocomplete=\"off\"></p>\
         <p><button type=\"submit\" id=\"add-yubikey\">Add a YubiKey</button></p></form>\
         <h2>Recovery codes</h2>\
         <form method=\"post\" action=\"{ACCOUNT_RECOVERY}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <p><button type=\"submit\" id=\"add-recovery\">Make ten recovery codes</button></p></form>\
         <script src=\"{WEBAUTHN_SCRIPT}\"></script>",
        user = esc(&subject.username),
        tenant = esc(&subject.tenant),
        csrf = csrf.as_str(),
    );
    let mut response = page(StatusCode::OK, "Your sign-in factors", &body);
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    if let Some(v) = cookie_header(ACCOUNT_CSRF_COOKIE, &csrf, None) {
        headers.append(header::SET_COOKIE, v);
    }
    response
}

/// A posted account form after its checks: identity-idp reachable, a form body with each field
/// once, the account CSRF token and the origin; the session cookie.
fn account_posted<'a>(
    app: &'a AppState,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(&'a IdpHandle, Fields, Zeroizing<String>), Box<Response>> {
    let handle = login_handle(app)?;
    if !is_form(headers) {
        return Err(Box::new(bad_request()));
    }
    let fields = Fields(
        params(body)
            .ok_or_else(|| Box::new(bad_request()))?
            .into_iter()
            .map(|(k, v)| (k, Zeroizing::new(v)))
            .collect(),
    );
    let csrf = fields.get("csrf");
    let csrf_ok = cookie(headers, ACCOUNT_CSRF_COOKIE).is_some_and(|c| {
        !csrf.is_empty() && oauth::constant_time_eq(c.as_bytes(), csrf.as_bytes())
    });
    if !csrf_ok || !same_origin(headers, uri) {
        return Err(Box::new(page(
            StatusCode::FORBIDDEN,
            "Form expired",
            &format!("<p>The form could not be verified. <a href=\"{ACCOUNT}\">Open your account page again</a>.</p>"),
        )));
    }
    let session = session(headers).ok_or_else(|| Box::new(signed_out()))?;
    Ok((handle, fields, session))
}

fn kind_of(fields: &Fields) -> Option<Kind> {
    match fields.get("kind") {
        "passkey" => Some(Kind::Passkey),
        "security-key" => Some(Kind::SecurityKey),
        _ => None,
    }
}

/// A refusal as the account page shows it.
fn account_refused(e: cryptoutil_actors::Error) -> Response {
    use cryptoutil_actors::Error as E;
    let (status, text) = match &e {
        E::Unauthenticated { .. } => return signed_out(),
        E::Forbidden { reason } => (StatusCode::FORBIDDEN, *reason),
        E::BadRequest { reason } => (StatusCode::BAD_REQUEST, *reason),
        E::Conflict { what } => (StatusCode::CONFLICT, *what),
        E::NotFound { what } => (StatusCode::NOT_FOUND, *what),
        _ => return ApiError::from(e).into_response(),
    };
    page(
        status,
        "Not changed",
        &format!(
            "<p id=\"message\" role=\"alert\">{}.</p><p><a href=\"{ACCOUNT}\">Back to your account</a></p>",
            esc(text)
        ),
    )
}

/// `POST /browser/account/webauthn/options` (`csrf`, `kind`): a registration's options.
pub(crate) async fn options_post(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (handle, fields, session) = match account_posted(&app, &uri, &headers, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let Some(kind) = kind_of(&fields) else {
        return bad_request();
    };
    match handle.register_options(session, kind).await {
        Ok(options) => options_answer(options),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `POST /browser/account/webauthn` (`csrf`, `kind`, `name`, `credential`): the browser's
/// registration, enrolled; back to the page.
pub(crate) async fn register_post(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (handle, fields, session) = match account_posted(&app, &uri, &headers, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let Some(kind) = kind_of(&fields) else {
        return bad_request();
    };
    let credential = Zeroizing::new(fields.get("credential").to_owned());
    match handle
        .register(session, kind, fields.get("name"), credential)
        .await
    {
        Ok(_) => see_other(&format!("{ACCOUNT}?done=added")),
        Err(e) => account_refused(e),
    }
}

/// `POST /browser/account/remove` (`csrf`, `id`): removes one of the user's factors.
pub(crate) async fn remove_post(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (handle, fields, session) = match account_posted(&app, &uri, &headers, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    match handle.remove_own(session, fields.get("id")).await {
        Ok(()) => see_other(&format!("{ACCOUNT}?done=removed")),
        Err(e) => account_refused(e),
    }
}

/// `text` as a QR code, inline SVG (no script, no style attribute: the page's CSP holds).
fn qr_svg(text: &str) -> Option<String> {
    use qrcode::render::svg;
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    let image = code
        .render::<svg::Color<'_>>()
        .min_dimensions(240, 240)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build();
    image
        .find("<svg")
        .and_then(|at| image.get(at..))
        .map(str::to_owned)
}

/// A page shown once, never cached.
fn once(title: &str, body: &str) -> Response {
    let mut response = page(StatusCode::OK, title, body);
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

/// `POST /browser/account/totp` (`csrf`, `name`): a new TOTP secret, its QR code and the
/// secret shown once.
pub(crate) async fn totp_post(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (handle, fields, session) = match account_posted(&app, &uri, &headers, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let shown = match handle
        .enroll_own(session, FactorKind::Totp, fields.get("name"), &Map::new())
        .await
    {
        Ok(shown) => shown,
        Err(e) => return account_refused(e),
    };
    let text = |k: &str| {
        shown
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let (uri, secret) = (
        Zeroizing::new(text("otpauth_uri")),
        Zeroizing::new(text("secret")),
    );
    let Some(qr) = qr_svg(&uri) else {
        return page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Unavailable",
            "<p>Try again.</p>",
        );
    };
    once(
        "Scan this code with your authenticator app",
        &format!(
            "<p>Scan it now: it is shown this once.</p><div id=\"otpauth-qr\">{qr}</div>\
             <p>Or type this secret: <code id=\"otpauth-secret\">{secret}</code> \
             ({alg}, {digits} digits, every {period} s).</p>\
             <p><a href=\"{ACCOUNT}?done=added\" id=\"back\">Back to your account</a></p>",
            secret = esc(&secret),
            alg = esc(&text("algorithm")),
            digits = shown.get("digits").cloned().unwrap_or_default(),
            period = shown.get("period").cloned().unwrap_or_default(),
        ),
    )
}

/// `POST /browser/account/yubikey` (`csrf`, `name`, `public_id`, `private_id`, `aes_key`,
/// `otp`): the user's YubiKey, imported; back to the page.
pub(crate) async fn yubikey_post(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (handle, fields, session) = match account_posted(&app, &uri, &headers, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let mut params: Map<String, Value> = ["public_id", "private_id", "aes_key", "otp"]
        .into_iter()
        .map(|k| (k.to_owned(), Value::String(fields.get(k).to_owned())))
        .collect();
    let enrolled = handle
        .enroll_own(session, FactorKind::YubicoOtp, fields.get("name"), &params)
        .await;
    // The key and ids leave no copy behind.
    for v in params.values_mut() {
        if let Value::String(text) = v {
            text.zeroize();
        }
    }
    match enrolled {
        Ok(_) => see_other(&format!("{ACCOUNT}?done=added")),
        Err(e) => account_refused(e),
    }
}

/// `POST /browser/account/recovery` (`csrf`): ten recovery codes, shown once.
pub(crate) async fn recovery_post(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (handle, _, session) = match account_posted(&app, &uri, &headers, &body) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let shown = match handle
        .enroll_own(
            session,
            FactorKind::RecoveryCodes,
            "Recovery codes",
            &Map::new(),
        )
        .await
    {
        Ok(shown) => shown,
        Err(e) => return account_refused(e),
    };
    let codes: String = shown
        .get("codes")
        .and_then(|c| c.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|c| c.as_str())
                .map(|c| format!("<li><code>{}</code></li>", esc(c)))
                .collect()
        })
        .unwrap_or_default();
    once(
        "Your recovery codes",
        &format!(
            "<p>Keep them somewhere safe: each signs you in once in place of your device's \
             code, and they are shown this once.</p><ul id=\"recovery-codes\">{codes}</ul>\
             <p><a href=\"{ACCOUNT}?done=added\" id=\"back\">Back to your account</a></p>"
        ),
    )
}
