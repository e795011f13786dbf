// identity-idp's WebAuthn ceremonies (login, security-key step, account page). A button with
// data-webauthn="get" or "create" fetches the ceremony's options from data-options (posting its
// form's hidden fields: the CSRF token, the pending request), runs navigator.credentials, and
// posts the browser's answer (Level 3 JSON, base64url) in the form named by data-form. No
// inline script; buttons stay hidden where the browser has no WebAuthn.
"use strict";

(() => {
  function toB64url(buffer) {
    const bytes = new Uint8Array(buffer);
    let bin = "";
    for (const b of bytes) bin += String.fromCharCode(b);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function fromB64url(text) {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
    return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).buffer;
  }

  function credentialList(list) {
    return (list || []).map((c) => ({ ...c, id: fromB64url(c.id) }));
  }

  function creationOptions(o) {
    return {
      ...o,
      challenge: fromB64url(o.challenge),
      user: { ...o.user, id: fromB64url(o.user.id) },
      excludeCredentials: credentialList(o.excludeCredentials),
    };
  }

  function requestOptions(o) {
    return { ...o, challenge: fromB64url(o.challenge), allowCredentials: credentialList(o.allowCredentials) };
  }

  // The browser's answer as RegistrationResponseJSON or AuthenticationResponseJSON.
  function encode(credential) {
    const r = credential.response;
    const response = { clientDataJSON: toB64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toB64url(r.attestationObject);
      response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
    } else {
      response.authenticatorData = toB64url(r.authenticatorData);
      response.signature = toB64url(r.signature);
      response.userHandle = r.userHandle ? toB64url(r.userHandle) : null;
    }
    return {
      id: credential.id,
      rawId: toB64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || null,
      clientExtensionResults: credential.getClientExtensionResults(),
      response,
    };
  }

  async function run(button) {
    const form = document.getElementById(button.dataset.form);
    const message = document.getElementById("webauthn-message");
    message.textContent = "";
    const fields = new URLSearchParams();
    for (const input of form.querySelectorAll("input[type=hidden]")) {
      if (input.name !== "credential") fields.set(input.name, input.value);
    }
    if (button.dataset.kind) {
      fields.set("kind", button.dataset.kind);
      form.elements.kind.value = button.dataset.kind;
    }
    try {
      const answer = await fetch(button.dataset.options, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
        credentials: "same-origin",
        body: fields,
      });
      if (!answer.ok) throw new Error(`the server refused (HTTP ${answer.status})`);
      const { publicKey } = await answer.json();
      const credential =
        button.dataset.webauthn === "create"
          ? await navigator.credentials.create({ publicKey: creationOptions(publicKey) })
          : await navigator.credentials.get({ publicKey: requestOptions(publicKey) });
      form.elements.credential.value = JSON.stringify(encode(credential));
      form.submit();
    } catch (err) {
      message.textContent = `Not done: ${err.message}`;
      message.className = "error";
    }
  }

  if (window.PublicKeyCredential && window.isSecureContext) {
    for (const button of document.querySelectorAll("button[data-webauthn]")) {
      button.hidden = false;
      button.addEventListener("click", () => run(button));
    }
  }
})();
