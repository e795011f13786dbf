// The JOSE browser UI: plain DOM and fetch against /browser/api/v1/jose (same origin, session
// cookie). No inline script or style, so the page runs under the strict CSP of /browser.
"use strict";

const API = "/browser/api/v1/jose";
const $ = (selector) => document.querySelector(selector);

// UTF-8 text <-> base64url without padding (the API's encoding for payloads and plaintexts).
function toB64url(text) {
  const bytes = new TextEncoder().encode(text);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
function fromB64url(b64) {
  const padded = b64.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((b64.length + 3) % 4);
  const bin = atob(padded);
  return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
}

// The CSRF token of the session (the service keeps it; this cookie only carries it to the
// script), sent on every state-changing request.
function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)__Host-cryptoutil-jose-csrf=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : body && body.reason ? body.reason : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(method, path, body) {
  const headers = { accept: "application/json" };
  if (method !== "GET") {
    headers["content-type"] = "application/json";
    headers["x-csrf-token"] = csrfToken();
  }
  const response = await fetch(API + path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const parsed = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, parsed);
  return parsed;
}

function status(message, isError) {
  const el = $("#status");
  el.textContent = message;
  el.className = isError ? "error" : "";
}

function show(output, message, ok) {
  output.textContent = message;
  output.className = ok ? "ok" : "error";
}

function explain(err) {
  if (err.status === 401) return "Sign in required: use the Sign in link above.";
  if (err.status === 403) return "Your session lacks the jose scope.";
  return err.message;
}

// Keys: table rows and the key pickers of the sign and encrypt forms.
// (`/keys` lists symmetric keys too; the JWK Set at `/jwks` holds public keys only.)
async function refreshKeys() {
  const listed = await api("GET", "/keys");
  const keys = listed.keys.map((k) => ({ kid: k.kid, alg: k.jwk.alg, use: k.jwk.use, kty: k.jwk.kty, exportable: k.exportable }));
  const tbody = $("#keys");
  tbody.replaceChildren();
  for (const key of keys) {
    const row = tbody.insertRow();
    const kid = row.insertCell();
    kid.className = "kid";
    kid.textContent = key.kid;
    row.insertCell().textContent = key.alg || "";
    row.insertCell().textContent = key.use || "";
    row.insertCell().textContent = key.kty + (key.exportable ? ", exportable" : "");
    const remove = document.createElement("button");
    remove.textContent = "Delete";
    remove.className = "danger";
    remove.addEventListener("click", () => deleteKey(key.kid));
    row.insertCell().append(remove);
  }
  for (const select of document.querySelectorAll("select.kids")) {
    const chosen = select.value;
    select.replaceChildren();
    for (const key of keys.filter((k) => k.use === select.dataset.use)) {
      select.append(new Option(`${key.alg} ${key.kid.slice(0, 12)}…`, key.kid, false, key.kid === chosen));
    }
  }
  status(`${keys.length} key(s) in your tenant.`);
}

async function deleteKey(kid) {
  try {
    await api("DELETE", `/jwks/${encodeURIComponent(kid)}`);
    await refreshKeys();
  } catch (err) {
    status(explain(err), true);
  }
}

function on(formId, handler) {
  $(formId).addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await handler(new FormData(event.target));
    } catch (err) {
      status(explain(err), true);
    }
  });
}

on("#create", async (form) => {
  // The option's group says what the key is for.
  const option = $("#create select[name=alg]").selectedOptions[0];
  const use = option.parentElement.label === "Signing" ? "sig" : "enc";
  await api("POST", "/jwks", { alg: form.get("alg"), use, exportable: form.get("exportable") === "on" });
  await refreshKeys();
});

on("#sign", async (form) => {
  const { jws } = await api("POST", "/jws/sign", { kid: form.get("kid"), payload: toB64url(form.get("message")) });
  $("#verify textarea[name=jws]").value = jws;
  show($("#verify-out"), "Signed: the JWS is in the verify box.", true);
});

on("#verify", async (form) => {
  const out = $("#verify-out");
  try {
    const r = await api("POST", "/jws/verify", { jws: form.get("jws").trim() });
    show(out, `Valid, signed by ${r.kid}. Message: ${fromB64url(r.payload)}`, true);
  } catch (err) {
    if (err.status === 400) show(out, `Not valid: ${err.message}`, false);
    else throw err;
  }
});

on("#encrypt", async (form) => {
  const { jwe } = await api("POST", "/jwe/encrypt", {
    kid: form.get("kid"),
    enc: form.get("enc"),
    plaintext: toB64url(form.get("plaintext")),
  });
  $("#decrypt textarea[name=jwe]").value = jwe;
  show($("#decrypt-out"), "Encrypted: the JWE is in the decrypt box.", true);
});

on("#decrypt", async (form) => {
  const out = $("#decrypt-out");
  try {
    const r = await api("POST", "/jwe/decrypt", { jwe: form.get("jwe").trim() });
    show(out, `Decrypted: ${fromB64url(r.plaintext)}`, true);
  } catch (err) {
    if (err.status === 400) show(out, `Not decrypted: ${err.message}`, false);
    else throw err;
  }
});

// Who is signed in; sign out ends the session here and at the identity provider.
async function showSession() {
  const response = await fetch("/browser/api/v1/session", { credentials: "same-origin" });
  if (!response.ok) return;
  const who = await response.json();
  $("#who").textContent = `Signed in as ${who.subject} (tenant ${who.tenant}).`;
  $("#signin").hidden = true;
  $("#signout").hidden = false;
}

$("#signout").addEventListener("click", async () => {
  const response = await fetch("/browser/auth/logout", {
    method: "POST",
    credentials: "same-origin",
    headers: { "x-csrf-token": csrfToken() },
  });
  if (response.ok) window.location.assign((await response.json()).logout_url);
  else status("Sign-out failed.", true);
});

showSession().catch(() => {});
refreshKeys().catch((err) => status(explain(err), true));
