"""The reference applications (identity-spa, identity-rp) driven end to end in a real browser.

Usage: browser_reference_apps.py SPA RP RS AUTHZ IDP CA USERNAME PASSWORD TOTP_SECRET
       browser_reference_apps.py --compose   (after scripts/compose-up: each application in
                                              its own container; `.ci/run` runs it)

Headless Chromium (Debian's, through Selenium) with a virtual passkey provider (WebDriver's
virtual authenticator API). IDP is a name (`https://localhost:<port>`): a WebAuthn RP ID is a
domain. Each case is one step of a user's day:

1. the SPA signs in with the password and a TOTP code (pyotp), then creates and reads a note
   through identity-rs, cross-origin with DPoP-bound tokens; nothing is in localStorage,
   sessionStorage or IndexedDB afterwards;
2. the identity-idp account page registers a passkey; the SPA signs out (identity-authz's end
   session, which ends the identity-idp session too);
3. the RP signs in with the passkey alone (no username) and shows the note the SPA wrote (the
   same user at the same identity-rs);
4. the SPA signs in again (single sign-on, no form) and signs out: identity-authz tells the RP
   over the back channel, and the RP's page shows its session ended;
5. no console errors and no CSP violation on any page.

With --compose, the operator (the bootstrap client in identity-authz's volume) makes the user
and its TOTP factor; Chromium reaches the containers by their names and trusts the suite's CAs
through an NSS database (as compose_signin.py does), and one more case follows:

6. kill -9 identity-authz while the user is signed in to the RP: its page keeps showing the
   notes (identity-rs validates the token locally), a new sign-in at the RP and at the SPA says
   "Sign-in unavailable"; once identity-authz is back (and identity-idp's breaker for it has
   closed again) the RP signs in again (the passkey: a
   restart of identity-authz ends the sign-in sessions it knew) and the SPA through that
   session (no form).

Otherwise Chromium trusts the suite's leaf certificates by their keys (chromium.py).
Prints {"results": [{"case", "ok", "detail"}]}.
"""

import sys

import pyotp
from selenium.common.exceptions import (NoSuchElementException, StaleElementReferenceException,
                                        WebDriverException)
from selenium.webdriver.common.by import By
from selenium.webdriver.common.virtual_authenticator import VirtualAuthenticatorOptions
from selenium.webdriver.support.ui import WebDriverWait

from authz_peer import Report
from chromium import browser, spki_hash


# What every storage API of the page holds (IndexedDB: the names of its databases).
STORAGE = """
const done = arguments[arguments.length - 1];
const dump = (s) => Object.fromEntries(Array.from({length: s.length}, (_, i) => [s.key(i), s.getItem(s.key(i))]));
indexedDB.databases().then(dbs => done({local: dump(localStorage), session: dump(sessionStorage),
  indexeddb: dbs.map(d => d.name)}), e => done({error: String(e)}));
"""


def compose_setup():
    """The Compose suite: its URLs, a new user with a TOTP factor, and a browser for it."""
    import secrets

    import requests
    from compose_signin import TRUST, bootstrap, nss_home, operator_token

    names = {"authz": ("identity-authz", 8180), "idp": ("identity-idp", 8181),
             "rs": ("identity-rs", 8182), "rp": ("identity-rp", 8183), "spa": ("identity-spa", 8184)}
    urls = {k: f"https://{host}:{port}" for k, (host, port) in names.items()}
    on_host = lambda k: f"https://127.0.0.1:{names[k][1]}"
    op = {"authorization": "Bearer " + operator_token(bootstrap())}
    username, password = f"compose-erin-{secrets.token_hex(4)}", secrets.token_urlsafe(18)
    r = requests.post(on_host("authz") + "/service/api/v1/identity/users", headers=op, verify=TRUST,
                      timeout=30, json={"username": username, "password": password})
    assert r.status_code == 201, r.text
    r = requests.post(on_host("idp") + f"/service/api/v1/identity/users/{username}/factors", headers=op,
                      verify=TRUST, timeout=30, json={"type": "totp", "name": "phone"})
    assert r.status_code == 201, r.text
    rules = ", ".join(f"MAP {host} 127.0.0.1" for host, _ in names.values())
    d = browser(args=[f"--host-resolver-rules={rules}"], home=nss_home())
    return urls, username, password, r.json()["secret"], d


def main():
    compose = sys.argv[1:] == ["--compose"]
    if compose:
        urls, username, password, totp_secret, d = compose_setup()
        spa, rp, idp = urls["spa"], urls["rp"], urls["idp"]
    else:
        _, spa, rp, rs, authz, idp, ca, username, password, totp_secret = sys.argv
        d = browser([spki_hash(u) for u in (spa, rp, rs, authz, idp)])
    # Pages reload under the waits: an element found a moment ago may be gone.
    transient = [NoSuchElementException, StaleElementReferenceException]
    wait = WebDriverWait(d, 40, ignored_exceptions=transient)
    logs = []

    report = Report(describe=lambda detail: {"detail": f"{detail} at {d.current_url}"},
                    after=lambda: logs.extend(d.get_log("browser")))
    case = report.case

    def find(selector):
        return d.find_element(By.CSS_SELECTOR, selector)

    def settled(predicate):
        """`predicate` for a wait, where an element of a document the browser has just left
        counts as not yet: Chromium names that "Node with given id does not belong to the
        document", an unknown error rather than a stale element (a page that navigates
        between the find and the read, as the SPA's sign-in does)."""
        def check(_):
            try:
                return predicate()
            except WebDriverException as e:
                if "does not belong to the document" in (e.msg or ""):
                    return False
                raise
        return check

    def shown(selector):
        wait.until(settled(lambda: any(e.is_displayed()
                                       for e in d.find_elements(By.CSS_SELECTOR, selector))))
        return find(selector)

    def text_is(selector, expected):
        wait.until(settled(lambda: expected in find(selector).text))

    def password_step():
        wait.until(lambda _: d.current_url.startswith(f"{idp}/browser/login"))
        find("#username").send_keys(username)
        find("#password").send_keys(password)
        find("#sign-in").click()

    def spa_home():
        d.get(f"{spa}/browser/spa/")
        shown("#sign-in")

    def spa_sign_in_with_password_and_totp():
        spa_home()
        find("#sign-in").click()
        password_step()
        wait.until(lambda _: d.find_elements(By.ID, "code"))
        find("#code").send_keys(pyotp.TOTP(totp_secret).now())
        find("#verify").click()
        wait.until(lambda _: d.current_url.startswith(f"{spa}/browser/spa/"))
        text_is("#status", "Signed in.")
        assert "code=" not in d.current_url, "the code is left in the address bar"
        find("#title").send_keys("written by the SPA")
        find("#body").send_keys("through identity-rs, cross-origin, DPoP-bound")
        find("#add").click()
        text_is("#status", "Saved.")
        titles = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#notes .title")]
        assert "written by the SPA" in titles, titles
        storage = d.execute_async_script(STORAGE)
        assert storage == {"local": {}, "session": {}, "indexeddb": []}, storage
        return {"notes": titles, "storage": storage}
    case("the SPA signs in with a password and a TOTP code, writes and reads a note, stores nothing",
         spa_sign_in_with_password_and_totp)

    def passkey_registered():
        o = VirtualAuthenticatorOptions()
        o.protocol = VirtualAuthenticatorOptions.Protocol.CTAP2
        o.transport = VirtualAuthenticatorOptions.Transport.INTERNAL
        o.has_resident_key = o.has_user_verification = o.is_user_verified = True
        o.is_user_consenting = True
        d.add_virtual_authenticator(o)
        d.get(f"{idp}/browser/account")
        shown("#add-passkey")
        find("#name").clear()
        find("#name").send_keys("Laptop passkey")
        find("#add-passkey").click()
        wait.until(lambda _: "done=added" in d.current_url)
        creds = d.get_credentials()
        assert len(creds) == 1 and creds[0].is_resident_credential, creds
        # Sign out of the SPA: identity-authz's end session, back to the SPA.
        spa_sign_in_silently()
        find("#sign-out").click()
        wait.until(lambda _: d.current_url.rstrip("/").startswith(f"{spa}/browser/spa"))
        shown("#sign-in")
        return {"rp_id": creds[0].rp_id}

    def spa_sign_in_silently():
        spa_home()
        find("#sign-in").click()
        wait.until(lambda _: d.current_url.startswith(f"{spa}/browser/spa/"))
        text_is("#status", "Signed in.")
    case("the account page registers a passkey; the SPA signs out", passkey_registered)

    def rp_passkey():
        d.get(f"{rp}/browser/rp/")
        text_is("#status", "Not signed in.")
        find("#sign-in").click()
        wait.until(lambda _: d.current_url.startswith(f"{idp}/browser/login"))
        shown("#webauthn-passkey").click()
        wait.until(lambda _: d.current_url.startswith(f"{rp}/browser/rp/"))
        text_is("#status", "Signed in as")
        titles = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#notes .title")]
        assert "written by the SPA" in titles, titles
        cookies = d.get_cookies()
        assert not any(c["value"].count(".") >= 2 for c in cookies), "a token in a cookie"
        storage = d.execute_async_script(STORAGE)
        assert storage == {"local": {}, "session": {}, "indexeddb": []}, storage
        return {"notes": titles, "cookies": sorted(c["name"] for c in cookies)}
    case("the RP signs in with the passkey alone and reads the SPA's note", rp_passkey)

    def back_channel():
        spa_sign_in_silently()
        find("#sign-out").click()
        wait.until(lambda _: d.current_url.rstrip("/").startswith(f"{spa}/browser/spa"))
        shown("#sign-in")

        def rp_ended(_):
            d.get(f"{rp}/browser/rp/")
            return "Not signed in." in find("#status").text
        WebDriverWait(d, 30, poll_frequency=0.5, ignored_exceptions=transient).until(rp_ended)
        return "the RP's session ended"
    case("signing out of identity-authz elsewhere ends the RP session (back channel)", back_channel)

    def clean_console():
        # A missing favicon is the browser's own request, not the pages'.
        bad = [e["message"] for e in logs
               if (e.get("level") == "SEVERE" and "favicon.ico" not in e.get("message", ""))
               or "Content Security Policy" in e.get("message", "")]
        assert not bad, bad
        return {"entries": len(logs)}
    case("no console errors, no CSP violation", clean_console)

    if compose:
        case("kill -9 identity-authz: the RP keeps its session, new sign-ins say unavailable, "
             "then work again", lambda: authz_outage(d, find, shown, text_is, rp, spa, idp))

    d.quit()
    report.print()
    if not report.ok():
        sys.exit(1)


def authz_outage(d, find, shown, text_is, rp, spa, idp):
    import subprocess
    import time

    import requests
    from compose_signin import ROOT, TRUST, idp_breaker_state

    def compose(*args):
        return subprocess.run(["docker-compose", *args], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()

    # Signed in at the RP (the passkey, at identity-idp's login page), with a note to show.
    d.get(f"{rp}/browser/rp/")
    find("#sign-in").click()
    WebDriverWait(d, 30).until(lambda _: d.current_url.startswith(f"{idp}/browser/login"))
    shown("#webauthn-passkey").click()
    text_is("#status", "Signed in as")
    authz = compose("ps", "-q", "identity-authz")
    subprocess.run(["docker", "kill", "-s", "KILL", authz], capture_output=True, check=True)
    try:
        d.get(f"{rp}/browser/rp/")
        text_is("#status", "Signed in as")
        kept = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#notes .title")]
        assert "written by the SPA" in kept, kept
        d.get(f"{rp}/browser/rp/login")
        text_is("h1", "Sign-in unavailable")
        d.get(f"{spa}/browser/spa/")
        shown("#sign-in").click()
        text_is("#status", "Sign-in unavailable")
    finally:
        compose("start", "identity-authz")
    deadline = time.monotonic() + 90

    def until(predicate, failure, pause):
        """Asks `predicate` every `pause` seconds (a request error counts as no) until it says
        yes, or fails with `failure` at the deadline."""
        while True:
            try:
                if predicate():
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(failure)
            time.sleep(pause)

    until(lambda: requests.get("https://127.0.0.1:8180/.well-known/openid-configuration",
                               verify=TRUST, timeout=5).ok,
          "identity-authz did not come back", 1)
    # identity-idp's breaker for identity-authz opened during the outage (its health is polled
    # every second, closed and half-open too); good polls half-open it, then close it. Until it
    # is closed a sign-in's several back-channel calls may outnumber the half-open probes and
    # identity-idp says "unavailable", as it should: the sign-in below waits for closed.
    until(lambda: idp_breaker_state() == 0.0,
          "identity-idp's breaker for identity-authz did not close", 0.5)
    # Back: a restart of identity-authz ends the sign-in sessions it knew, so the RP's sign-in
    # asks again (the passkey), and the SPA's rides on that new session (no form).
    d.get(f"{rp}/browser/rp/login")
    WebDriverWait(d, 30).until(lambda _: d.current_url.startswith((f"{rp}/browser/rp/",
                                                                   f"{idp}/browser/login")))
    if d.current_url.startswith(f"{idp}/browser/login"):
        shown("#webauthn-passkey").click()
    WebDriverWait(d, 30).until(lambda _: d.current_url.startswith(f"{rp}/browser/rp/"))
    text_is("#status", "Signed in as")
    d.get(f"{spa}/browser/spa/")
    shown("#sign-in").click()
    text_is("#status", "Signed in.")
    return {"rp_kept": kept}


if __name__ == "__main__":
    main()
