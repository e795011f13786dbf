"""WebAuthn judged by a real browser and a second relying-party implementation.

Usage: browser_webauthn.py AUTHZ_BASE IDP_ORIGIN CA_PEM CLIENT_ID CLIENT_SECRET USERNAME PASSWORD

Headless Chromium (Debian's, through Selenium) with Chrome's virtual authenticators (WebDriver's
virtual authenticator API) signs in through identity-idp's pages, served on IDP_ORIGIN (a name,
not an IP: an RP ID must be a domain). The client's redirect URI is identity-idp's account page,
so each sign-in lands there; Authlib redeems the code and validates the ID token against the JWK
Set (its `amr` and `acr` say how the user signed in).

1. password, then the account page registers a passkey (a discoverable credential with user
   verification, on an internal authenticator); a request with acr_values for a
   phishing-resistant sign-in steps that password session up with the passkey;
2. a new sign-in without a username: the login page's passkey button, amr hwk/swk + mfa;
3. a security key (a USB authenticator without user verification) is registered, then used after
   the password (amr pwd + hwk + mfa); an authenticator app is enrolled from the account page's
   QR code (read by zbar from Chromium's screenshot, its URI by pyotp) and its code signs in;
   ten recovery codes are shown once; a YubiKey's Yubico OTP slot (yubiotp simulates it) is
   imported with one OTP it typed, and its next OTP signs in;
4. py_webauthn (duo-labs, a second implementation) parses the options identity-idp sent and
   verifies the same registration and assertion Chromium answered, which identity-idp accepts
   too; a replayed assertion is refused;
5. no console errors or CSP violations on the way.

Chromium trusts the suite's leaf certificates through --ignore-certificate-errors-spki-list
(WebAuthn refuses pages with certificate errors). Prints {"results": [{"case", "ok", "detail"}]}.
"""

import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from urllib.parse import urlparse

import pyotp
from yubiotp.modhex import modhex
from yubiotp.otp import YubiKey, encode_otp
import requests
import webauthn
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.jwk import KeySet
from selenium.webdriver.common.by import By
from selenium.webdriver.common.virtual_authenticator import VirtualAuthenticatorOptions
from selenium.webdriver.support.ui import WebDriverWait
from webauthn.helpers import parse_authentication_options_json, parse_registration_options_json

from chromium import browser, spki_hash


def authenticator(d, passkey):
    """A virtual authenticator: a platform passkey provider (resident keys, user verification)
    or a USB security key (neither)."""
    o = VirtualAuthenticatorOptions()
    o.protocol = VirtualAuthenticatorOptions.Protocol.CTAP2
    o.transport = (VirtualAuthenticatorOptions.Transport.INTERNAL if passkey
                   else VirtualAuthenticatorOptions.Transport.USB)
    o.has_resident_key = passkey
    o.has_user_verification = passkey
    o.is_user_verified = passkey
    o.is_user_consenting = True
    d.add_virtual_authenticator(o)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# Runs a ceremony the way the page's script does, returning the options and the answer
# (WebDriver's async script: the last argument is the callback).
CEREMONY = """
const [url, fields, create, done] = arguments;
const dec = (t) => Uint8Array.from(atob(t.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((t.length + 3) % 4)), c => c.charCodeAt(0)).buffer;
const enc = (b) => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
(async () => {
  const r = await fetch(url, {method: "POST", credentials: "same-origin",
    headers: {"content-type": "application/x-www-form-urlencoded"}, body: new URLSearchParams(fields)});
  if (!r.ok) return done({error: `options: HTTP ${r.status}`});
  const {publicKey: o} = await r.json();
  const list = (l) => (l || []).map(c => ({...c, id: dec(c.id)}));
  let c;
  if (create) {
    c = await navigator.credentials.create({publicKey: {...o, challenge: dec(o.challenge),
      user: {...o.user, id: dec(o.user.id)}, excludeCredentials: list(o.excludeCredentials)}});
  } else {
    c = await navigator.credentials.get({publicKey: {...o, challenge: dec(o.challenge),
      allowCredentials: list(o.allowCredentials)}});
  }
  const resp = {clientDataJSON: enc(c.response.clientDataJSON)};
  if (create) {
    resp.attestationObject = enc(c.response.attestationObject);
    resp.transports = c.response.getTransports();
  } else {
    resp.authenticatorData = enc(c.response.authenticatorData);
    resp.signature = enc(c.response.signature);
    resp.userHandle = c.response.userHandle ? enc(c.response.userHandle) : null;
  }
  done({options: o, credential: {id: c.id, rawId: enc(c.rawId), type: c.type,
    authenticatorAttachment: c.authenticatorAttachment, clientExtensionResults: {}, response: resp}});
})().catch(e => done({error: String(e)}));
"""


FETCH = """
const [url, fields, done] = arguments;
fetch(url, {method: "POST", credentials: "same-origin",
  headers: {"content-type": "application/x-www-form-urlencoded"}, body: new URLSearchParams(fields)})
  .then(r => done(r.status), e => done(String(e)));
"""


def main():
    _, authz, idp, ca, client_id, secret, username, password = sys.argv
    results = []
    d = browser([spki_hash(authz), spki_hash(idp)])
    wait = WebDriverWait(d, 20)
    redirect = f"{idp}/browser/account"
    rp_id = urlparse(idp).hostname
    meta = requests.get(f"{authz}/.well-known/openid-configuration", verify=ca, timeout=10).json()
    keys = KeySet.import_key_set(requests.get(meta["jwks_uri"], verify=ca, timeout=10).json())
    state = {}

    def case(name, fn):
        try:
            results.append({"case": name, "ok": True, "detail": fn()})
        except Exception as e:  # the report carries every failure
            results.append({"case": name, "ok": False,
                            "detail": f"{type(e).__name__}: {e} at {d.current_url}"})

    def find(selector):
        return d.find_element(By.CSS_SELECTOR, selector)

    def shown(selector):
        """The element, once the page that has it is loaded and its script showed it."""
        wait.until(lambda _: any(e.is_displayed() for e in d.find_elements(By.CSS_SELECTOR, selector)))
        return find(selector)

    def start(prompt_login=True, acr=None):
        """A new authorization request in the browser: the login page; the session, verifier
        and nonce to redeem with."""
        session = OAuth2Session(client_id, secret, scope="openid", redirect_uri=redirect,
                                code_challenge_method="S256")
        session.trust_env = False
        session.verify = ca
        verifier, nonce = generate_token(48), generate_token(20)
        extra = {"prompt": "login"} if prompt_login else {}
        if acr:
            extra["acr_values"] = acr
        uri, _ = session.create_authorization_url(meta["authorization_endpoint"],
                                                  code_verifier=verifier, nonce=nonce, **extra)
        d.get(uri)
        wait.until(lambda _: d.current_url.startswith(f"{idp}/browser/login"))
        return session, verifier, nonce

    def finish(session, verifier, nonce):
        """Past a consent page if one shows, back on the account page with a code: the ID
        token's claims, validated by Authlib."""
        def arrived(_):
            if d.find_elements(By.ID, "allow"):
                find("#allow").click()
                return False
            return "code=" in d.current_url and d.current_url.startswith(redirect)
        wait.until(arrived)
        back = d.current_url
        tok = session.fetch_token(meta["token_endpoint"], authorization_response=back,
                                  code_verifier=verifier)
        token = jwt.decode(tok["id_token"], keys, algorithms=["ES256"])
        claims = CodeIDToken(
            token.claims, token.header,
            {"iss": {"essential": True, "value": meta["issuer"]},
             "aud": {"essential": True, "value": client_id},
             "nonce": {"essential": True, "value": nonce},
             "auth_time": {"essential": True}},
            {"nonce": nonce, "access_token": tok["access_token"], "client_id": client_id})
        claims.validate(now=int(time.time()), leeway=5)
        return dict(token.claims)

    def password_step():
        find("#username").send_keys(username)
        find("#password").send_keys(password)
        find("#sign-in").click()

    def register(button, name):
        d.get(redirect)
        shown(button)
        field = find("#name")
        field.clear()
        field.send_keys(name)
        find(button).click()
        wait.until(lambda _: "done=added" in d.current_url)
        return [li.get_attribute("data-type") for li in d.find_elements(By.CSS_SELECTOR, "#factors li")]

    def passkey_registered():
        authenticator(d, passkey=True)
        session, verifier, nonce = start()
        password_step()
        claims = finish(session, verifier, nonce)
        assert claims["amr"] == ["pwd"], claims
        listed = register("#add-passkey", "Laptop passkey")
        assert listed.count("webauthn") == 1, listed
        creds = d.get_credentials()
        assert len(creds) == 1 and creds[0].is_resident_credential, creds
        return {"factors": listed, "rp_id": creds[0].rp_id}
    case("the account page registers a passkey (discoverable, user verification)", passkey_registered)

    def step_up():
        # The browser's session is the password's; a request for a phishing-resistant sign-in
        # steps up from it with the passkey (no password again).
        session, verifier, nonce = start(prompt_login=False, acr="urn:cryptoutil:acr:phr")
        assert not d.find_elements(By.ID, "password"), "no password form"
        shown("#webauthn-step").click()
        claims = finish(session, verifier, nonce)
        amr = claims["amr"]
        assert claims["acr"] == "urn:cryptoutil:acr:phr", claims
        assert amr[0] == "pwd" and ("hwk" in amr or "swk" in amr) and "mfa" in amr, claims
        return {"amr": amr, "acr": claims["acr"]}
    case("acr_values for phishing-resistant sign-in steps a password session up with WebAuthn",
         step_up)

    def passkey_sign_in():
        session, verifier, nonce = start()
        shown("#webauthn-passkey").click()
        claims = finish(session, verifier, nonce)
        amr = claims["amr"]
        assert ("hwk" in amr or "swk" in amr) and "mfa" in amr and "pwd" not in amr, claims
        assert claims["acr"] == "urn:cryptoutil:acr:phr", claims
        assert claims["sub"], claims
        return {"amr": amr, "acr": claims.get("acr")}
    case("a passkey signs in without a username (amr hwk/swk + mfa)", passkey_sign_in)

    def security_key():
        d.remove_virtual_authenticator()
        authenticator(d, passkey=False)
        listed = register("#add-security-key", "USB key")
        assert listed.count("webauthn") == 2, listed
        session, verifier, nonce = start()
        password_step()
        shown("#webauthn-step").click()
        claims = finish(session, verifier, nonce)
        amr = claims["amr"]
        assert amr[0] == "pwd" and "hwk" in amr and "mfa" in amr, claims
        return {"amr": amr, "acr": claims.get("acr")}
    case("a security key is the second factor after the password (amr pwd + hwk + mfa)", security_key)

    def authenticator_app():
        # The account page's QR code, read by zbar from what Chromium drew; pyotp's code from
        # the URI in it signs in after the password.
        d.get(redirect)
        shown("#add-totp").click()
        wait.until(lambda _: d.find_elements(By.CSS_SELECTOR, "#otpauth-qr svg"))
        png = os.path.join(tempfile.mkdtemp(), "qr.png")
        find("#otpauth-qr svg").screenshot(png)
        uri = subprocess.run(["zbarimg", "--raw", "-q", png], capture_output=True, text=True,
                             check=True).stdout.strip()
        totp = pyotp.parse_uri(uri)
        assert uri.startswith("otpauth://totp/") and totp.secret == find("#otpauth-secret").text, uri
        session, verifier, nonce = start()
        password_step()
        wait.until(lambda _: d.find_elements(By.ID, "code"))
        find("#code").send_keys(totp.now())
        find("#verify").click()
        claims = finish(session, verifier, nonce)
        assert claims["amr"] == ["pwd", "otp", "mfa"], claims
        assert claims["acr"] == "urn:cryptoutil:acr:mfa", claims
        return {"issuer": totp.issuer, "amr": claims["amr"]}
    case("the account page's QR code (zbar) enrolls an authenticator app (pyotp) that signs in",
         authenticator_app)

    def recovery_codes():
        d.get(redirect)
        shown("#add-recovery").click()
        wait.until(lambda _: d.find_elements(By.CSS_SELECTOR, "#recovery-codes li"))
        codes = [li.text for li in d.find_elements(By.CSS_SELECTOR, "#recovery-codes li")]
        assert len(codes) == 10 and len(set(codes)) == 10, codes
        d.get(redirect)
        listed = [li.get_attribute("data-type") for li in d.find_elements(By.CSS_SELECTOR, "#factors li")]
        assert "recovery_codes" in listed and "totp" in listed, listed
        return {"codes": len(codes), "factors": listed}
    case("the account page shows ten recovery codes once", recovery_codes)

    def yubikey():
        # A YubiKey's Yubico OTP slot (simulated by yubiotp) imported on the account page with
        # one OTP it typed; the next OTP signs in after the password, the first does not.
        key, uid = os.urandom(16), os.urandom(6)
        public_id = modhex(os.urandom(6)).decode()
        token = YubiKey(uid=uid, session=3, counter=0)
        typed = lambda: encode_otp(token.generate(), key, public_id.encode()).decode()
        first = typed()
        d.get(redirect)
        shown("#add-yubikey")
        for field, value in [("#public-id", public_id), ("#private-id", uid.hex()),
                             ("#aes-key", key.hex()), ("#yubikey-otp", first)]:
            find(field).send_keys(value)
        find("#add-yubikey").click()
        wait.until(lambda _: "done=added" in d.current_url)
        listed = [li.get_attribute("data-type") for li in d.find_elements(By.CSS_SELECTOR, "#factors li")]
        assert "yubico_otp" in listed, listed
        session, verifier, nonce = start()
        password_step()
        wait.until(lambda _: d.find_elements(By.ID, "code"))
        find("#code").send_keys(first)
        find("#verify").click()
        wait.until(lambda _: d.find_elements(By.ID, "message"))
        assert "incorrect" in find("#message").text, find("#message").text
        find("#code").send_keys(typed())
        find("#verify").click()
        claims = finish(session, verifier, nonce)
        assert claims["amr"] == ["pwd", "otp", "mfa"], claims
        return {"public_id": public_id, "amr": claims["amr"], "factors": listed}
    case("the account page imports a YubiKey (yubiotp) whose next OTP signs in, once", yubikey)

    def second_implementation():
        # A registration run by hand on the account page: py_webauthn reads the options and
        # verifies Chromium's answer; then identity-idp enrolls the same answer.
        d.remove_virtual_authenticator()
        authenticator(d, passkey=True)
        d.get(redirect)
        csrf = find("#webauthn-form input[name=csrf]").get_attribute("value")
        got = d.execute_async_script(CEREMONY, "/browser/account/webauthn/options",
                                     {"csrf": csrf, "kind": "passkey"}, True)
        assert "error" not in got, got
        parsed = parse_registration_options_json(got["options"])
        assert parsed.rp.id == rp_id and parsed.challenge == unb64url(got["options"]["challenge"]), parsed
        verified = webauthn.verify_registration_response(
            credential=got["credential"], expected_challenge=parsed.challenge,
            expected_rp_id=rp_id, expected_origin=idp, require_user_verification=True)
        d.execute_script(
            "const f = document.getElementById('webauthn-form');"
            "f.elements.credential.value = arguments[0]; f.elements.name.value = 'Checked twice';"
            "f.elements.kind.value = 'passkey'; f.submit();", json.dumps(got["credential"]))
        wait.until(lambda _: "done=added" in d.current_url)
        # An assertion run by hand on the login page: py_webauthn verifies it with the key it
        # read from the registration; identity-idp signs the user in with the same answer.
        session, verifier, nonce = start()
        fields = {n: find(f"#webauthn-form input[name={n}]").get_attribute("value")
                  for n in ("challenge", "csrf")}
        fields["purpose"] = "passkey"
        got = d.execute_async_script(CEREMONY, "/browser/login/webauthn/options", fields, False)
        assert "error" not in got, got
        options = parse_authentication_options_json(got["options"])
        assert options.rp_id == rp_id and not options.allow_credentials, options
        auth = webauthn.verify_authentication_response(
            credential=got["credential"], expected_challenge=options.challenge,
            expected_rp_id=rp_id, expected_origin=idp,
            credential_public_key=verified.credential_public_key,
            credential_current_sign_count=verified.sign_count, require_user_verification=True)
        answer = json.dumps(got["credential"])
        d.execute_script(
            "const f = document.getElementById('webauthn-form');"
            "f.elements.credential.value = arguments[0]; f.submit();", answer)
        claims = finish(session, verifier, nonce)
        state["replay"] = answer
        return {"py_webauthn_sign_count": auth.new_sign_count, "fmt": str(verified.fmt),
                "amr": claims["amr"]}
    case("py_webauthn reads the options and verifies the same ceremonies identity-idp accepts",
         second_implementation)

    def replay_refused():
        # A live ceremony of this browser (its options fetched, its cookie set), answered with
        # the assertion already used.
        start()
        fields = {n: find(f"#webauthn-form input[name={n}]").get_attribute("value")
                  for n in ("challenge", "csrf")}
        fields["purpose"] = "passkey"
        status = d.execute_async_script(FETCH, "/browser/login/webauthn/options", fields)
        assert status == 200, status
        d.execute_script(
            "const f = document.getElementById('webauthn-form');"
            "f.elements.credential.value = arguments[0]; f.submit();", state["replay"])
        wait.until(lambda _: d.find_elements(By.ID, "message"))
        text = find("#message").text
        assert "did not sign you in" in text, text
        assert "code=" not in d.current_url, d.current_url
        return text
    case("a replayed assertion is refused", replay_refused)

    def console_clean():
        logs = d.get_log("browser")
        bad = [e["message"] for e in logs if e["level"] == "SEVERE"
               and "favicon.ico" not in e["message"]
               # The account page answers the redirect's code with the page itself.
               and "rp.example" not in e["message"]]
        assert not bad, bad
        return {"entries": len(logs)}
    case("no console errors or CSP violations", console_clean)

    d.quit()
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
