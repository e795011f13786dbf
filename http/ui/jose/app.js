// The JOSE browser UI: plain DOM and fetch against /browser/api/v1/jose (same origin, session
// cookie), on the helpers of ../common.js. No inline script or style, so the page runs under
// the strict CSP of /browser.
"use strict";

const { $, toB64url, fromB64url, api, status, show, explain, on } = cryptoutil.ui(
  "jose",
  "/browser/api/v1/jose",
);

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

refreshKeys().catch((err) => status(explain(err), true));
