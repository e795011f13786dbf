"""Browser sign-in across the Compose suite: identity-idp and identity-authz in separate
containers, talking over the back channel (run after `scripts/compose-up`; `.ci/run` runs it).

Usage: compose_signin.py

Headless Chromium (Debian's, through Selenium) trusts the suite's CAs (compose/secrets/trust.pem)
through an NSS database of its own (`certutil` from libnss3-tools) and reaches the containers by
their names (`--host-resolver-rules` maps identity-authz and identity-idp to the ports published
on 127.0.0.1), so every certificate is checked as a browser checks it.

1. The operator (the bootstrap client in identity-authz's data volume) makes a user and a
   code-flow client whose redirect URI is identity-idp's account page.
2. Chromium signs in with the password alone (the user has nothing else): Authlib redeems the
   code and validates the ID token (amr pwd).
3. On the account page Chromium adds an authenticator app; pyotp makes its codes.
4. A new sign-in (prompt=login) asks for the password and the TOTP code: amr pwd otp mfa,
   acr mfa. The same code again is refused.
5. Prometheus saw identity-idp's calls to identity-authz go through its breaker
   (federation_request_duration_seconds_count{instance="identity-idp:9400",service="identity"}).
6. No console errors or CSP violations.

Prints {"results": [{"case", "ok", "detail"}]} and exits 1 on any failure.
"""

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

import pyotp
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.jwk import KeySet
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from chromium import browser

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRUST = os.path.join(ROOT, "compose", "secrets", "trust.pem")
# What the host reaches (published ports, certificates valid for 127.0.0.1) and what the
# browser and the tokens name (the containers' names).
AUTHZ_HOST, IDP_HOST = "https://127.0.0.1:8180", "https://127.0.0.1:8181"
AUTHZ, IDP = "https://identity-authz:8180", "https://identity-idp:8181"
PROMETHEUS = "https://127.0.0.1:9099"
USER, PASSWORD = "compose-alice", "a compose password that is long enough"


def on_host(url):
    """A URL naming a container, as the host reaches it."""
    return url.replace(AUTHZ, AUTHZ_HOST).replace(IDP, IDP_HOST)


def bootstrap():
    cid = subprocess.run(["docker-compose", "ps", "-q", "identity-authz"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.strip()
    out = subprocess.run(["docker", "cp", cid + ":/data/bootstrap.json", "-"],
                         capture_output=True, check=True).stdout
    return json.load(tarfile.open(fileobj=io.BytesIO(out)).extractfile("bootstrap.json"))


def operator_token(boot):
    c = boot["service_client"]
    r = requests.post(AUTHZ_HOST + "/service/oauth2/v1/token", verify=TRUST, timeout=15,
                      auth=(c["client_id"], c["client_secret"]),
                      data={"grant_type": "client_credentials", "scope": "identity"})
    r.raise_for_status()
    return r.json()["access_token"]


def nss_home():
    """A HOME whose NSS database trusts every CA of trust.pem (Chromium on Linux reads
    ~/.pki/nssdb for locally trusted roots)."""
    if not shutil.which("certutil"):
        raise SystemExit("certutil is required (apt-get install libnss3-tools)")
    home = tempfile.mkdtemp()
    db = os.path.join(home, ".pki", "nssdb")
    os.makedirs(db)
    subprocess.run(["certutil", "-d", "sql:" + db, "-N", "--empty-password"], check=True)
    pems = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----",
                      open(TRUST).read(), re.S)
    assert pems, "no certificate in " + TRUST
    for i, pem in enumerate(pems):
        path = os.path.join(home, f"ca-{i}.pem")
        with open(path, "w") as f:
            f.write(pem + "\n")
        subprocess.run(["certutil", "-d", "sql:" + db, "-A", "-t", "C,,", "-n", f"cryptoutil-{i}",
                        "-i", path], check=True)
    return home


def idp_breaker_state():
    """identity-idp's breaker for identity-authz as Prometheus last scraped it (0 closed,
    1 half-open, 2 open), or None before the first scrape."""
    q = 'federation_circuit_breaker_state{instance="identity-idp:9400",service="identity"}'
    r = requests.get(PROMETHEUS + "/api/v1/query", params={"query": q}, verify=TRUST, timeout=5)
    r.raise_for_status()
    values = [float(x["value"][1]) for x in r.json()["data"]["result"]]
    return values[0] if values else None


def breaker_calls():
    q = 'federation_request_duration_seconds_count{instance="identity-idp:9400",service="identity"}'
    r = requests.get(PROMETHEUS + "/api/v1/query", params={"query": q}, verify=TRUST, timeout=5)
    r.raise_for_status()
    return sum(float(x["value"][1]) for x in r.json()["data"]["result"])


def main():
    results = []
    boot = bootstrap()
    op = {"authorization": "Bearer " + operator_token(boot)}
    redirect = IDP + "/browser/account"
    r = requests.post(AUTHZ_HOST + "/service/api/v1/identity/users", headers=op, verify=TRUST,
                      timeout=30, json={"username": USER, "password": PASSWORD})
    assert r.status_code == 201, r.text
    r = requests.post(AUTHZ_HOST + "/service/api/v1/identity/clients", headers=op, verify=TRUST,
                      timeout=15, json={"name": "Compose RP", "redirect_uris": [redirect],
                                        "first_party": True})
    assert r.status_code == 201, r.text
    client_id, secret = r.json()["client_id"], r.json()["client_secret"]
    meta = requests.get(AUTHZ_HOST + "/.well-known/openid-configuration", verify=TRUST,
                        timeout=15).json()
    assert meta["issuer"] == AUTHZ, meta["issuer"]
    keys = KeySet.import_key_set(requests.get(on_host(meta["jwks_uri"]), verify=TRUST,
                                              timeout=15).json())
    calls_before = breaker_calls()

    d = browser(args=["--host-resolver-rules=MAP identity-authz 127.0.0.1, MAP identity-idp 127.0.0.1"],
                home=nss_home())
    wait = WebDriverWait(d, 30)
    state = {}

    def case(name, fn):
        try:
            results.append({"case": name, "ok": True, "detail": fn()})
        except Exception as e:  # the report carries every failure
            results.append({"case": name, "ok": False,
                            "detail": f"{type(e).__name__}: {e} at {d.current_url}"})

    def find(selector):
        return d.find_element(By.CSS_SELECTOR, selector)

    def start():
        session = OAuth2Session(client_id, secret, scope="openid", redirect_uri=redirect,
                                code_challenge_method="S256")
        session.trust_env = False
        session.verify = TRUST
        verifier, nonce = generate_token(48), generate_token(20)
        uri, _ = session.create_authorization_url(meta["authorization_endpoint"],
                                                  code_verifier=verifier, nonce=nonce,
                                                  prompt="login")
        assert uri.startswith(AUTHZ + "/"), uri
        d.get(uri)
        wait.until(lambda _: d.current_url.startswith(IDP + "/browser/login"))
        find("#username").send_keys(USER)
        find("#password").send_keys(PASSWORD)
        find("#sign-in").click()
        return session, verifier, nonce

    def finish(session, verifier, nonce):
        wait.until(lambda _: d.current_url.startswith(redirect) and "code=" in d.current_url)
        tok = session.fetch_token(on_host(meta["token_endpoint"]),
                                  authorization_response=d.current_url, code_verifier=verifier)
        token = jwt.decode(tok["id_token"], keys, algorithms=["ES256"])
        claims = CodeIDToken(
            token.claims, token.header,
            {"iss": {"essential": True, "value": AUTHZ},
             "aud": {"essential": True, "value": client_id},
             "nonce": {"essential": True, "value": nonce},
             "auth_time": {"essential": True}},
            {"nonce": nonce, "access_token": tok["access_token"], "client_id": client_id})
        claims.validate(now=int(time.time()), leeway=5)
        return dict(token.claims)

    def password_only():
        claims = finish(*start())
        assert claims["amr"] == ["pwd"], claims
        return {"amr": claims["amr"], "sub": claims["sub"]}
    case("Chromium signs in with the password through identity-idp's container", password_only)

    def add_app():
        d.get(redirect)
        wait.until(lambda _: any(e.is_displayed() for e in d.find_elements(By.ID, "add-totp")))
        find("#add-totp").click()
        wait.until(lambda _: d.find_elements(By.ID, "otpauth-secret"))
        state["totp"] = pyotp.TOTP(find("#otpauth-secret").text)
        return {"listed": [li.get_attribute("data-type")
                           for li in d.find_elements(By.CSS_SELECTOR, "#factors li")]}
    case("the account page adds an authenticator app", add_app)

    def password_and_totp():
        session, verifier, nonce = start()
        wait.until(lambda _: d.find_elements(By.ID, "code"))
        code = state["totp"].now()
        find("#code").send_keys(code)
        find("#verify").click()
        claims = finish(session, verifier, nonce)
        assert claims["amr"] == ["pwd", "otp", "mfa"], claims
        assert claims["acr"] == "urn:cryptoutil:acr:mfa", claims
        state["code"] = code
        return {"amr": claims["amr"], "acr": claims["acr"]}
    case("Chromium signs in with the password and a TOTP code (pyotp)", password_and_totp)

    def replay_refused():
        start()
        wait.until(lambda _: d.find_elements(By.ID, "code"))
        find("#code").send_keys(state["code"])
        find("#verify").click()
        wait.until(lambda _: d.find_elements(By.ID, "message"))
        assert "code=" not in d.current_url, d.current_url
        return find("#message").text
    case("the same TOTP code again is refused", replay_refused)

    def through_breaker():
        deadline = time.monotonic() + 15
        seen = breaker_calls()
        while seen - calls_before < 8 and time.monotonic() < deadline:
            time.sleep(1)
            seen = breaker_calls()
        assert seen - calls_before >= 8, (calls_before, seen)
        return {"calls": seen - calls_before}
    case("identity-idp's calls to identity-authz went through its breaker (Prometheus)",
         through_breaker)

    def console_clean():
        logs = d.get_log("browser")
        bad = [e["message"] for e in logs if e["level"] == "SEVERE"
               and "favicon.ico" not in e["message"]]
        assert not bad, bad
        return {"entries": len(logs)}
    case("no console errors or CSP violations", console_clean)

    d.quit()
    print(json.dumps({"results": results}, indent=1))
    if not all(r["ok"] for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
