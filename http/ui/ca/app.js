// The CA browser UI: CAs (roots and subordinates), the built-in profiles, issuance from a
// pasted request, certificates with revoke, hold, release and download, each CA's published
// certificate and CRL, enrollment labels, one-time RA secrets and the RA's decisions on
// waiting requests, and the tenant's audit log, through /browser/api/v1/ca (same origin,
// session cookie) on the helpers of ../common.js. No inline script or style, so the page runs
// under the strict CSP of /browser.
"use strict";

const { $, api, status, show, explain, on } = cryptoutil.ui("ca", "/browser/api/v1");

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

function link(label, href, filename) {
  const a = document.createElement("a");
  a.textContent = label;
  a.href = href;
  if (filename) a.download = filename;
  return a;
}

// A PEM certificate as a file the browser saves (a blob: URL, same origin).
function pemLink(pem, filename) {
  return link("PEM", URL.createObjectURL(new Blob([pem], { type: "application/x-pem-file" })), filename);
}

// A row's first cell: an id, in the monospace style of ids.
function idCell(row, text) {
  const cell = row.insertCell();
  cell.className = "kid";
  cell.textContent = text;
}

function date(unix) {
  return new Date(unix * 1000).toISOString().slice(0, 10);
}

let cas = [];

async function refreshCas() {
  ({ cas } = await api("GET", "/ca/cas"));
  const tbody = $("#cas");
  tbody.replaceChildren();
  const names = new Map(cas.map((ca) => [ca.id, ca.name]));
  for (const ca of cas) {
    const row = tbody.insertRow();
    idCell(row, ca.id);
    row.insertCell().textContent = ca.name;
    row.insertCell().textContent = ca.subject;
    row.insertCell().textContent = ca.key;
    row.insertCell().textContent = ca.parent ? names.get(ca.parent) || ca.parent : "(root)";
    row.insertCell().textContent = date(ca.not_after);
    const published = row.insertCell();
    published.append(
      pemLink(ca.certificate, `${ca.id}.pem`),
      " ",
      link("certificate (DER)", `/browser/api/v1/ca/cas/${ca.id}/certificate`, `${ca.id}.cer`),
      " ",
      link("CRL", `/browser/api/v1/ca/cas/${ca.id}/crl`, `${ca.id}.crl`),
    );
  }
  for (const select of document.querySelectorAll("select.cas")) {
    const chosen = select.value;
    select.replaceChildren();
    if (select.dataset.empty) select.append(new Option(select.dataset.empty, ""));
    for (const ca of cas) {
      select.append(new Option(`${ca.name} (${ca.key}, ${ca.id})`, ca.id, false, ca.id === chosen));
    }
  }
  status(`${cas.length} CA(s) in your tenant.`);
}

async function showProfiles() {
  const { profiles } = await api("GET", "/ca/profiles");
  const tbody = $("#profiles");
  const select = $("#profile-select");
  tbody.replaceChildren();
  select.replaceChildren();
  for (const p of profiles) {
    const row = tbody.insertRow();
    row.insertCell().textContent = p.name;
    row.insertCell().textContent = [...p.key_usages, ...p.extended_key_usages].join(", ");
    const names = p.allowed_sans.length ? p.allowed_sans.join(", ") : "none";
    row.insertCell().textContent = p.required_san.length ? `${names} (one of ${p.required_san.join(", ")} required)` : names;
    row.insertCell().textContent = `${p.default_validity_days} / ${p.max_validity_days} days`;
    select.append(new Option(p.name, p.name));
  }
  for (const other of document.querySelectorAll("select.profiles")) {
    other.replaceChildren(...profiles.map((p) => new Option(p.name, p.name)));
  }
}

async function refreshLabels() {
  const { labels } = await api("GET", "/ca/labels");
  const tbody = $("#labels");
  tbody.replaceChildren();
  const names = new Map(cas.map((ca) => [ca.id, ca.name]));
  for (const l of labels) {
    const row = tbody.insertRow();
    row.insertCell().textContent = l.label;
    row.insertCell().textContent = names.get(l.ca) || l.ca;
    row.insertCell().textContent = l.profile;
    row.insertCell().textContent = l.approval;
    row.insertCell().textContent = `${location.origin}/.well-known/est/${l.label}/`;
  }
  for (const select of document.querySelectorAll("select.labels")) {
    select.replaceChildren(...labels.map((l) => new Option(l.label, l.label)));
  }
}

on("#label", async (form) => {
  const label = await api("POST", "/ca/labels", {
    label: form.get("label"),
    ca: form.get("ca"),
    profile: form.get("profile"),
    approval: form.get("approval"),
  });
  await refreshLabels();
  status(`Label ${label.label}: ${label.approval} approval.`);
});

on("#secret", async (form) => {
  const body = { label: form.get("label"), ttl: form.get("ttl") };
  if (form.get("subject")) body.subject = form.get("subject");
  const made = await api("POST", "/ca/ra/secrets", body);
  const out = $("#secret-out");
  show(out, `reference: ${made.reference}\nsecret: ${made.secret}\nexpires: ${new Date(made.expires_at * 1000).toISOString()}\n` +
    "Shown this once: the EST client authenticates with HTTP Basic reference:secret.", true);
  status(`One-time secret ${made.reference} for ${body.label}.`);
});

async function refreshRequests() {
  const filter = $("#requests select[name=status]").value;
  const { requests } = await api("GET", `/ca/ra/requests?status=${filter}`);
  const tbody = $("#request-rows");
  tbody.replaceChildren();
  for (const r of requests) {
    const row = tbody.insertRow();
    idCell(row, r.id);
    row.insertCell().textContent = r.label;
    row.insertCell().textContent = r.subject;
    row.insertCell().textContent = `${r.requested_by} (${r.protocol})`;
    row.insertCell().textContent = r.status + (r.serial ? ` (${r.serial})` : "") + (r.reason ? `: ${r.reason}` : "");
    const actions = row.insertCell();
    if (r.status === "pending") {
      actions.append(button("Approve", async () => {
        const done = await api("POST", `/ca/ra/requests/${r.id}/approve`, {});
        await refreshRequests();
        status(`${r.id} approved: certificate ${done.serial} waits for its client.`);
      }), " ", button("Reject", async () => {
        await api("POST", `/ca/ra/requests/${r.id}/reject`, { reason: $("#reject-reason").value });
        await refreshRequests();
        status(`${r.id} rejected.`);
      }, true));
    }
  }
  status(`${requests.length} enrollment request(s).`);
}

on("#requests", refreshRequests);

on("#create", async (form) => {
  const body = {
    name: form.get("name"),
    subject: { common_name: form.get("cn") },
    key: form.get("key"),
  };
  if (form.get("o")) body.subject.organization = form.get("o");
  if (form.get("parent")) body.parent = form.get("parent");
  if (form.get("validity")) body.validity = form.get("validity");
  if (form.get("path_len") !== "") body.path_len = Number(form.get("path_len"));
  const dns = form.get("permitted_dns").split(",").map((d) => d.trim()).filter((d) => d);
  if (dns.length) body.permitted_dns = dns;
  const ca = await api("POST", "/ca/cas", body);
  await refreshCas();
  status(`Created ${ca.name} (${ca.id}): ${ca.subject}.`);
});

on("#issue", async (form) => {
  const body = { profile: form.get("profile"), csr: form.get("csr") };
  if (form.get("validity")) body.validity = form.get("validity");
  const out = $("#issue-out");
  const ca = form.get("ca");
  try {
    const cert = await api("POST", `/ca/cas/${ca}/certificates`, body);
    show(out, `Issued ${cert.serial} (${cert.subject}), valid until ${date(cert.not_after)}.\n\n${cert.certificate}`, true);
    out.append(pemLink([cert.certificate, ...cert.chain].join(""), `${cert.serial}-chain.pem`));
    status(`Issued ${cert.serial}.`);
  } catch (err) {
    show(out, `Not issued: ${explain(err)}`, false);
  }
});

async function refreshCerts() {
  const ca = $("#certs select[name=ca]").value;
  const filter = $("#certs select[name=status]").value;
  const { certificates } = await api("GET", `/ca/cas/${ca}/certificates?status=${filter}`);
  const tbody = $("#cert-rows");
  tbody.replaceChildren();
  for (const cert of certificates) {
    const row = tbody.insertRow();
    idCell(row, cert.serial);
    row.insertCell().textContent = cert.subject;
    row.insertCell().textContent = cert.profile;
    row.insertCell().textContent = date(cert.not_after);
    const state = cert.revocation ? `${cert.status} (${cert.revocation.reason})` : cert.status;
    row.insertCell().textContent = state;
    const actions = row.insertCell();
    actions.append(pemLink(cert.certificate, `${cert.serial}.pem`), " ");
    if (cert.status === "valid" || cert.status === "on_hold") {
      actions.append(button("Revoke", async () => {
        const reason = $("#reason").value;
        await api("POST", `/ca/cas/${ca}/certificates/${cert.serial}/revoke`, { reason });
        await refreshCerts();
        status(`${cert.serial}: ${reason}; the CRL was signed anew.`);
      }, true));
    }
    if (cert.status === "on_hold") {
      actions.append(button("Release", async () => {
        await api("POST", `/ca/cas/${ca}/certificates/${cert.serial}/release`, {});
        await refreshCerts();
        status(`${cert.serial} is valid again.`);
      }));
    }
  }
  status(`${certificates.length} certificate(s).`);
}

on("#certs", refreshCerts);

on("#audit", async () => {
  const rows = [];
  let from = 1;
  for (;;) {
    const page = await api("GET", `/ca/audit?from=${from}&limit=1000`);
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
    row.insertCell().textContent = r.op;
    row.insertCell().textContent = r.outcome + (r.error ? `: ${r.error}` : "");
  }
  status(`${rows.length} audit record(s) in your tenant; the latest 50 shown.`);
});

refreshCas()
  .then(showProfiles)
  .then(refreshLabels)
  .catch((err) => status(explain(err), true));
