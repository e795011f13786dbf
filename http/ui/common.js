// What every cryptoutil browser UI shares: base64url, the session's CSRF token, JSON calls to
// the service's /browser API, status lines, form wiring, and sign-in state with sign-out.
// Plain DOM and fetch, same origin, no inline script or style (the /browser CSP stays strict).
"use strict";

const cryptoutil = {
  // A UI of `service` whose API lives under `apiBase`.
  ui(service, apiBase) {
    const $ = (selector) => document.querySelector(selector);

    // UTF-8 text <-> base64url without padding (the API's encoding for binary values).
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

    // The session's CSRF token (the service keeps it; this cookie only carries it to the
    // script), sent on every state-changing request.
    function csrfToken() {
      const name = `__Host-cryptoutil-${service}-csrf`;
      const m = document.cookie.match(new RegExp(`(?:^|;\\s*)${name}=([^;]+)`));
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
      const response = await fetch(apiBase + path, {
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
      if (err.status === 403 && err.body && err.body.error === "insufficient_scope") {
        return `Your session lacks the ${service} scope.`;
      }
      return err.message;
    }

    // Runs `handler(formData)` on submit; failures go to the status line.
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

    return { $, toB64url, fromB64url, api, status, show, explain, on };
  },
};
