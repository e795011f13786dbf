// The KMS browser UI: elastic keys, their versions, encryption, signatures and the tenant's
// audit log, through /browser/api/v1 (same origin, session cookie) on the helpers of
// ../common.js. No inline script or style, so the page runs under the strict CSP of /browser.
"use strict";

const { $, toB64url, fromB64url, api, status, show, explain, on } = cryptoutil.ui(
  "kms",
  "/browser/api/v1",
);

const ENCRYPTION = ["A256GCM", "A256KW", "RSA-OAEP-256", "ECDH-ES+A256KW"];

function button(label, handler, danger) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  if (danger) b.className = "danger";
  b.addEventListener("click", async () => {
    try {
      await handler();
    } catch (err) {
      status(explain(err), true);
    }
  });
  return b;
}

function keyState(key) {
  if (key.destroy_at) return `deleted, destroyed ${new Date(key.destroy_at * 1000).toISOString()}`;
  return key.enabled ? "enabled" : "disabled";
}

// Keys: the table and the key pickers of the other forms.
async function refreshKeys() {
  const { elastickeys } = await api("GET", "/elastickeys");
  const tbody = $("#keys");
  tbody.replaceChildren();
  for (const key of elastickeys) {
    const row = tbody.insertRow();
    const id = row.insertCell();
    id.className = "kid";
    id.textContent = key.id;
    row.insertCell().textContent = key.name;
    row.insertCell().textContent = key.algorithm + (key.exportable ? ", exportable" : "");
    row.insertCell().textContent = `v${key.latest}`;
    row.insertCell().textContent = keyState(key);
    const actions = row.insertCell();
    if (!key.destroy_at) {
      actions.append(
        button("Rotate", async () => {
          const r = await api("POST", `/elastickeys/${key.id}/rotate`);
          await refreshKeys();
          status(`${key.name}: version ${r.version} is now the latest.`);
        }),
        button(key.enabled ? "Disable" : "Enable", async () => {
          await api("PATCH", `/elastickeys/${key.id}`, { enabled: !key.enabled });
          await refreshKeys();
        }),
        button("Delete", async () => {
          await api("DELETE", `/elastickeys/${key.id}`);
          await refreshKeys();
        }, true),
      );
    }
  }
  const usable = elastickeys.filter((k) => !k.destroy_at);
  for (const select of document.querySelectorAll("select.keys")) {
    const chosen = select.value;
    select.replaceChildren();
    const kind = select.dataset.kind;
    for (const key of usable) {
      const enc = ENCRYPTION.includes(key.algorithm);
      if (kind === "any" || (kind === "enc") === enc) {
        select.append(new Option(`${key.name} (${key.algorithm}, ${key.id})`, key.id, false, key.id === chosen));
      }
    }
  }
  status(`${elastickeys.length} elastic key(s) in your tenant.`);
}

on("#create", async (form) => {
  const days = Number(form.get("days"));
  await api("POST", "/elastickeys", {
    name: form.get("name"),
    algorithm: form.get("algorithm"),
    exportable: form.get("exportable") === "on",
    rotation_period: days > 0 ? days * 86400 : undefined,
  });
  await refreshKeys();
});

async function showVersions(id) {
  const { materialkeys } = await api("GET", `/elastickeys/${id}/materialkeys`);
  const tbody = $("#version-rows");
  tbody.replaceChildren();
  for (const v of materialkeys) {
    const row = tbody.insertRow();
    row.insertCell().textContent = `v${v.version}`;
    const kid = row.insertCell();
    kid.className = "kid";
    kid.textContent = v.kid;
    row.insertCell().textContent = v.destroyed ? "destroyed" : v.latest ? "latest" : v.disabled ? "disabled" : v.decrypts ? "usable" : "below the minimum";
    const actions = row.insertCell();
    if (!v.latest && !v.destroyed) {
      actions.append(
        button(v.disabled ? "Enable" : "Disable", async () => {
          await api("PATCH", `/elastickeys/${id}/materialkeys/${v.version}`, { enabled: v.disabled });
          await showVersions(id);
        }),
        button("Destroy", async () => {
          await api("DELETE", `/elastickeys/${id}/materialkeys/${v.version}`);
          await showVersions(id);
        }, true),
      );
    }
  }
  status(`${materialkeys.length} version(s).`);
}

on("#versions", async (form) => showVersions(form.get("id")));

on("#encrypt", async (form) => {
  const id = form.get("id");
  const { jwe } = await api("POST", `/elastickeys/${id}/encrypt`, { plaintext: toB64url(form.get("plaintext")) });
  $("#decrypt textarea[name=jwe]").value = jwe;
  show($("#decrypt-out"), "Encrypted: the JWE is in the decrypt box.", true);
});

$("#datakey").addEventListener("click", async () => {
  try {
    const id = $("#encrypt select[name=id]").value;
    const { jwe } = await api("POST", `/elastickeys/${id}/datakey`, { wrapped_only: true });
    $("#decrypt textarea[name=jwe]").value = jwe;
    show($("#decrypt-out"), "A new data key, wrapped: the JWE is in the decrypt box.", true);
  } catch (err) {
    status(explain(err), true);
  }
});

// The key that opens a JWE or verifies a JWS is the one its kid (`<id>.v<n>`) names.
function keyOf(token) {
  const header = JSON.parse(fromB64url(token.split(".")[0]));
  return String(header.kid || "").replace(/\.v\d+$/, "");
}

on("#decrypt", async (form) => {
  const out = $("#decrypt-out");
  const jwe = form.get("jwe").trim();
  try {
    const r = await api("POST", `/elastickeys/${keyOf(jwe)}/decrypt`, { jwe });
    show(out, `Decrypted: ${fromB64url(r.plaintext)}`, true);
  } catch (err) {
    if (err.status === 400 || err.status === 403 || err.status === 404) show(out, `Not decrypted: ${err.message}`, false);
    else throw err;
  }
});

on("#sign", async (form) => {
  const id = form.get("id");
  const { jws } = await api("POST", `/elastickeys/${id}/sign`, { payload: toB64url(form.get("message")) });
  $("#verify textarea[name=jws]").value = jws;
  show($("#verify-out"), "Signed: the JWS is in the verify box.", true);
});

on("#verify", async (form) => {
  const out = $("#verify-out");
  const jws = form.get("jws").trim();
  try {
    const r = await api("POST", `/elastickeys/${keyOf(jws)}/verify`, { jws });
    show(out, `Valid. Message: ${fromB64url(r.payload)}`, true);
  } catch (err) {
    if (err.status === 400 || err.status === 403 || err.status === 404) show(out, `Not valid: ${err.message}`, false);
    else throw err;
  }
});

on("#batch", async (form) => {
  const id = form.get("id");
  const lines = form.get("lines").split("\n").filter((l) => l.length > 0);
  const { results } = await api("POST", `/elastickeys/${id}/batch/encrypt`, {
    items: lines.map((l) => ({ plaintext: toB64url(l) })),
  });
  const failed = results.filter((r) => r.error).length;
  show($("#batch-out"), `${results.length} item(s) encrypted, ${failed} failed:\n${results.map((r) => r.jwe || r.error).join("\n")}`, failed === 0);
});

on("#importkey", async () => {
  const { jwk } = await api("GET", "/importkey");
  show($("#importkey-out"), JSON.stringify(jwk), true);
});

on("#import", async (form) => {
  const id = form.get("id");
  const { version } = await api("POST", `/elastickeys/${id}/import`, { jwe: form.get("jwe").trim() });
  await refreshKeys();
  status(`Imported: version ${version} is now the latest.`);
});

on("#export", async (form) => {
  const id = form.get("id");
  let jwk;
  try {
    jwk = JSON.parse(form.get("jwk"));
  } catch {
    show($("#export-out"), "The public JWK is not JSON.", false);
    return;
  }
  const { jwe } = await api("POST", `/elastickeys/${id}/export`, { jwk });
  show($("#export-out"), jwe, true);
});

on("#audit", async () => {
  const rows = [];
  let from = 1;
  for (;;) {
    const page = await api("GET", `/audit?from=${from}&limit=1000`);
    rows.push(...page.records);
    if (page.next === null || page.next === undefined) break;
    from = page.next;
  }
  const tbody = $("#audit-rows");
  tbody.replaceChildren();
  for (const r of rows.slice(-50).reverse()) {
    const row = tbody.insertRow();
    row.insertCell().textContent = r.seq;
    row.insertCell().textContent = new Date(r.time * 1000).toISOString();
    row.insertCell().textContent = r.who;
    row.insertCell().textContent = r.key;
    row.insertCell().textContent = r.version === null ? "" : `v${r.version}`;
    row.insertCell().textContent = r.op;
    row.insertCell().textContent = r.outcome + (r.error ? `: ${r.error}` : "");
  }
  status(`${rows.length} audit record(s) in your tenant; the latest 50 shown.`);
});

refreshKeys().catch((err) => status(explain(err), true));
