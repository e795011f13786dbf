// identity-spa: a single-page app that is a public OAuth client of identity-authz and calls
// identity-rs cross-origin. No framework, no inline script (the page's CSP allows only this
// file), nothing kept in storage but the PKCE verifier between leaving for identity-authz and
// coming back (then removed at once).
//
// - PKCE S256 computed with WebCrypto (crypto.getRandomValues, crypto.subtle.digest).
// - DPoP (RFC 9449): an ECDSA P-256 key made with WebCrypto as non-extractable: the page can
//   sign proofs with it but no script can read it out. Access and refresh tokens are bound to
//   it; a stolen token is useless without the key.
// - Tokens live in this module's variables only: a reload signs in again (silently, while the
//   identity-idp session lasts).
// - Refresh-token rotation: each refresh spends the refresh token and keeps the new one.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const PENDING = "identity-spa-sign-in";
  let config = null;
  // In memory only.
  let dpopKey = null; // CryptoKeyPair, private key non-extractable
  let tokens = null; // {access, refresh, idToken, expires}

  const b64url = (bytes) =>
    btoa(String.fromCharCode(...new Uint8Array(bytes)))
      .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const utf8 = (text) => new TextEncoder().encode(text);
  const random = (n) => b64url(crypto.getRandomValues(new Uint8Array(n)));
  const sha256 = async (text) => b64url(await crypto.subtle.digest("SHA-256", utf8(text)));

  function show(text) {
    $("status").textContent = text;
  }

  class Unavailable extends Error {}

  // fetch that turns a network failure or a 5xx into "unavailable".
  async function call(url, init) {
    let r;
    try {
      r = await fetch(url, { ...init, credentials: "omit", cache: "no-store" });
    } catch (e) {
      throw new Unavailable(String(e));
    }
    if (r.status >= 500) throw new Unavailable(`HTTP ${r.status}`);
    return r;
  }

  // A DPoP proof for one request (RFC 9449 §4.2), with `ath` when it carries an access token.
  async function proof(method, url, accessToken) {
    const jwk = await crypto.subtle.exportKey("jwk", dpopKey.publicKey);
    const header = { typ: "dpop+jwt", alg: "ES256", jwk: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y } };
    const claims = { jti: random(16), htm: method, htu: url.split("?")[0], iat: Math.floor(Date.now() / 1000) };
    if (accessToken) claims.ath = await sha256(accessToken);
    const input = `${b64url(utf8(JSON.stringify(header)))}.${b64url(utf8(JSON.stringify(claims)))}`;
    const sig = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, dpopKey.privateKey, utf8(input));
    return `${input}.${b64url(sig)}`;
  }

  async function tokenRequest(fields) {
    const r = await call(config.token_endpoint, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        DPoP: await proof("POST", config.token_endpoint),
      },
      body: new URLSearchParams({ client_id: config.client_id, ...fields }),
    });
    const answer = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(`identity-authz refused: ${answer.error || r.status}`);
    if (answer.token_type !== "DPoP") throw new Error("the token is not DPoP-bound");
    return answer;
  }

  function keep(answer, previous) {
    tokens = {
      access: answer.access_token,
      refresh: answer.refresh_token || (previous && previous.refresh),
      idToken: answer.id_token || (previous && previous.idToken),
      expires: Date.now() + (answer.expires_in || 0) * 1000,
    };
  }

  // The access token, refreshed first (rotation) when it is about to expire. One refresh at a
  // time: two calls spending the same refresh token would look like theft to identity-authz,
  // which would revoke the whole family.
  let refreshing = null;
  async function accessToken() {
    if (tokens.expires - Date.now() > 30000) return tokens.access;
    if (!tokens.refresh) throw new Error("the session has expired");
    refreshing ??= tokenRequest({ grant_type: "refresh_token", refresh_token: tokens.refresh })
      .then((answer) => keep(answer, tokens))
      .finally(() => { refreshing = null; });
    await refreshing;
    return tokens.access;
  }

  async function notesCall(method, body) {
    const at = await accessToken();
    const headers = { authorization: `DPoP ${at}`, DPoP: await proof(method, config.notes_url, at) };
    if (body) headers["content-type"] = "application/json";
    const r = await call(config.notes_url, { method, headers, body: body && JSON.stringify(body) });
    if (!r.ok && r.status !== 201) {
      throw new Error(`identity-rs answered ${r.status}: ${r.headers.get("www-authenticate") || ""}`);
    }
    return r.json();
  }

  async function render() {
    const { notes } = await notesCall("GET");
    const list = $("notes");
    list.replaceChildren();
    for (const n of notes) {
      const li = document.createElement("li");
      const title = document.createElement("strong");
      title.className = "title";
      title.textContent = n.title;
      const body = document.createElement("span");
      body.className = "body";
      body.textContent = ` ${n.body || ""}`;
      li.append(title, body);
      list.append(li);
    }
  }

  async function signIn() {
    // Leave only for an identity-authz that answers: otherwise say so here.
    await call(`${config.issuer}/.well-known/openid-configuration`, { method: "GET" });
    const pending = { state: random(24), nonce: random(18), verifier: random(48) };
    const url = new URL(config.authorization_endpoint);
    const params = {
      response_type: "code", client_id: config.client_id, redirect_uri: config.redirect_uri,
      scope: config.scope, state: pending.state, nonce: pending.nonce,
      code_challenge: await sha256(pending.verifier), code_challenge_method: "S256",
      resource: config.resource,
    };
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    // Only for the round trip through identity-authz; removed as soon as the page is back.
    sessionStorage.setItem(PENDING, JSON.stringify(pending));
    location.assign(url.toString());
  }

  async function finishSignIn(query) {
    const saved = sessionStorage.getItem(PENDING);
    sessionStorage.removeItem(PENDING);
    history.replaceState(null, "", config.redirect_uri);
    const pending = saved && JSON.parse(saved);
    if (!pending || query.get("state") !== pending.state) throw new Error("this sign-in was not started here");
    if (query.get("iss") !== config.issuer) throw new Error("the answer did not come from our issuer");
    if (query.get("error")) throw new Error(`identity-authz refused the sign-in (${query.get("error")})`);
    dpopKey = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
    const answer = await tokenRequest({
      grant_type: "authorization_code", code: query.get("code"),
      redirect_uri: config.redirect_uri, code_verifier: pending.verifier,
    });
    const claims = JSON.parse(new TextDecoder().decode(
      Uint8Array.from(atob(answer.id_token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0))));
    const audience = [].concat(claims.aud);
    if (claims.nonce !== pending.nonce || claims.iss !== config.issuer || audience.length !== 1 ||
        audience[0] !== config.client_id || !(claims.exp * 1000 > Date.now())) {
      throw new Error("the ID token does not match this sign-in");
    }
    keep(answer, null);
    $("subject").textContent = claims.sub;
  }

  function signOut() {
    const url = new URL(config.end_session_endpoint);
    url.searchParams.set("id_token_hint", tokens.idToken);
    url.searchParams.set("post_logout_redirect_uri", config.redirect_uri);
    url.searchParams.set("client_id", config.client_id);
    tokens = null;
    dpopKey = null;
    location.assign(url.toString());
  }

  async function main() {
    config = await (await fetch("/browser/spa/config.json", { cache: "no-store" })).json();
    $("sign-in").addEventListener("click", () => signIn().catch(fail));
    $("sign-out").addEventListener("click", signOut);
    $("add-form").addEventListener("submit", (e) => {
      e.preventDefault();
      $("add").disabled = true;
      notesCall("POST", { title: $("title").value, body: $("body").value })
        .then(() => { $("title").value = ""; $("body").value = ""; return render(); })
        .then(() => show("Saved."))
        .catch(fail)
        .finally(() => { $("add").disabled = false; });
    });
    const query = new URLSearchParams(location.search);
    if (!query.has("code") && !query.has("error")) {
      show("Not signed in.");
      $("sign-in").hidden = false;
      return;
    }
    await finishSignIn(query);
    $("app").hidden = false;
    await render();
    show("Signed in.");
  }

  function fail(e) {
    if (e instanceof Unavailable) {
      show("Sign-in unavailable: identity-authz or identity-rs cannot be reached right now. Try again in a moment.");
    } else {
      show(`Something went wrong: ${e.message}`);
    }
    $("sign-in").hidden = false;
  }

  document.addEventListener("DOMContentLoaded", () => main().catch(fail));
})();
