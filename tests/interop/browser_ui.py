"""A real browser (Debian's Chromium, headless, driven by Selenium) uses the JOSE UI.

Usage: browser_ui.py JOSE_BASE USERNAME PASSWORD

Opens /browser/ui/jose/ signed out (the page says sign-in is required), follows its Sign in link
through identity-authz to identity-idp's login form, signs in, comes back to the UI with a
session, creates an ES256 key, signs and verifies a message, encrypts and decrypts with a dir
key, signs out (through identity-authz's end-session endpoint), and checks that the browser
logged no CSP violation or script error on the way. Prints {"results": [{"case", "ok",
"detail"}]}. Chromium and chromedriver come from Debian (.ci/run installs them); the server's
private CA is not in Chromium's store, so certificate errors are ignored here (TLS itself is
judged by openssl and the Rust tests).
"""

import json
import shutil
import sys
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait


def browser():
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        raise SystemExit("chromium and chromedriver are required (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--ignore-certificate-errors",
                "--disable-dev-shm-usage", f"--user-data-dir={tempfile.mkdtemp()}"]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def harness():
    """The browser, a 20 s wait, the report's results, `case(name, fn)` that records fn's
    outcome, and `text_of(css selector)`."""
    results = []
    d = browser()
    wait = WebDriverWait(d, 20)

    def case(name, fn):
        try:
            results.append({"case": name, "ok": True, "detail": fn()})
        except Exception as e:  # the report carries every failure
            results.append({"case": name, "ok": False,
                            "detail": f"{type(e).__name__}: {e} at {d.current_url}"})

    def text_of(selector):
        return d.find_element(By.CSS_SELECTOR, selector).text
    return d, wait, results, case, text_of


def console_clean(d, expected):
    """Asserts the browser logged no error but those containing one of `expected` (and the
    missing favicon); returns how many entries it logged."""
    logs = d.get_log("browser")
    bad = [entry["message"] for entry in logs if entry["level"] == "SEVERE"
           and "favicon.ico" not in entry["message"]
           and not any(e in entry["message"] for e in expected)]
    assert not bad, bad
    return {"entries": len(logs)}


def main():
    _, jose, username, password = sys.argv
    d, wait, results, case, text_of = harness()

    def signed_out():
        d.get(f"{jose}/browser/ui/jose/")
        wait.until(lambda _: "Sign in required" in text_of("#status"))
        return text_of("#status")
    case("signed out, the UI asks for a sign-in", signed_out)

    def sign_in():
        d.find_element(By.ID, "signin").click()
        wait.until(ec.presence_of_element_located((By.ID, "username")))
        assert "/browser/login" in d.current_url, d.current_url
        d.find_element(By.ID, "username").send_keys(username)
        d.find_element(By.ID, "password").send_keys(password)
        d.find_element(By.ID, "sign-in").click()
        wait.until(lambda _: "Signed in as" in text_of("#who"))
        assert d.current_url == f"{jose}/browser/ui/jose/", d.current_url
        cookies = {c["name"]: c for c in d.get_cookies()}
        session = cookies["__Host-cryptoutil-jose-session"]
        assert session["httpOnly"] and session["secure"] and session["sameSite"] == "Strict", session
        return text_of("#who")
    case("sign in through identity-idp's form and come back with a session", sign_in)

    def keys_and_signatures():
        Select(d.find_element(By.CSS_SELECTOR, "#create select[name=alg]")).select_by_visible_text("ES256")
        d.find_element(By.CSS_SELECTOR, "#create button").click()
        wait.until(lambda _: "1 key(s)" in text_of("#status"))
        d.find_element(By.CSS_SELECTOR, "#sign button").click()
        wait.until(lambda _: "Signed" in text_of("#verify-out"))
        d.find_element(By.CSS_SELECTOR, "#verify button").click()
        wait.until(lambda _: "Valid, signed by" in text_of("#verify-out"))
        return text_of("#verify-out")
    case("create an ES256 key, sign and verify (CSRF token sent by the page)", keys_and_signatures)

    def encryption():
        Select(d.find_element(By.CSS_SELECTOR, "#create select[name=alg]")).select_by_visible_text("dir")
        d.find_element(By.CSS_SELECTOR, "#create button").click()
        wait.until(lambda _: "2 key(s)" in text_of("#status"))
        d.find_element(By.CSS_SELECTOR, "#encrypt button").click()
        wait.until(lambda _: "Encrypted" in text_of("#decrypt-out"))
        d.find_element(By.CSS_SELECTOR, "#decrypt button").click()
        wait.until(lambda _: "Decrypted: secret message" in text_of("#decrypt-out"))
        return text_of("#decrypt-out")
    case("encrypt and decrypt with a dir key", encryption)

    def sign_out():
        d.find_element(By.ID, "signout").click()
        wait.until(lambda _: d.current_url == f"{jose}/browser/")
        d.get(f"{jose}/browser/ui/jose/")
        wait.until(lambda _: "Sign in required" in text_of("#status"))
        return d.current_url
    case("sign out ends the session", sign_out)

    def clean_console():
        # A signed-out page's API call answers 401: expected.
        return console_clean(d, ["status of 401"])
    case("no CSP violation or script error in the console", clean_console)

    d.quit()
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
