"""A real browser (Debian's Chromium, headless, driven by Selenium) uses the KMS UI.

Usage: browser_kms_ui.py KMS_BASE USERNAME PASSWORD

Opens /browser/ui/kms/ signed out (the page says sign-in is required), signs in through
identity-idp's form, creates an A256GCM key and encrypts and decrypts with it, makes a data key,
rotates it and sees two versions, disables the old one and sees its ciphertext refused,
creates an ES256 key and signs and verifies, batch-encrypts, imports a key jwcrypto wrapped to
the page's import key and exports it back to a jwcrypto key, reads the tenant's audit log, and
checks that the browser logged no CSP violation or script error. Prints {"results": [{"case",
"ok", "detail"}]}. The browser set-up is browser_ui.py's.
"""

import json
import sys

from jwcrypto import jwe, jwk

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select

from browser_ui import console_clean, harness


def main():
    _, kms, username, password = sys.argv
    d, wait, results, case, text_of = harness()

    def click(selector):
        d.find_element(By.CSS_SELECTOR, selector).click()

    def signed_out():
        d.get(f"{kms}/browser/ui/kms/")
        wait.until(lambda _: "Sign in required" in text_of("#status"))
        return text_of("#status")
    case("signed out, the UI asks for a sign-in", signed_out)

    def sign_in():
        d.find_element(By.ID, "signin").click()
        wait.until(ec.presence_of_element_located((By.ID, "username")))
        d.find_element(By.ID, "username").send_keys(username)
        d.find_element(By.ID, "password").send_keys(password)
        d.find_element(By.ID, "sign-in").click()
        wait.until(lambda _: "Signed in as" in text_of("#who"))
        assert d.current_url == f"{kms}/browser/ui/kms/", d.current_url
        wait.until(lambda _: "elastic key(s)" in text_of("#status"))
        return text_of("#who")
    case("sign in through identity-idp's form and come back with a session", sign_in)

    def encryption():
        Select(d.find_element(By.CSS_SELECTOR, "#create select[name=algorithm]")).select_by_visible_text("A256GCM")
        click("#create button")
        wait.until(lambda _: "1 elastic key(s)" in text_of("#status"))
        click("#encrypt button[type=submit]")
        wait.until(lambda _: "Encrypted" in text_of("#decrypt-out"))
        click("#decrypt button")
        wait.until(lambda _: "Decrypted: secret message" in text_of("#decrypt-out"))
        click("#datakey")
        wait.until(lambda _: "data key" in text_of("#decrypt-out"))
        return text_of("#decrypt-out")
    case("create an A256GCM key, encrypt, decrypt, make a data key", encryption)

    def rotation_and_versions():
        click("#encrypt button[type=submit]")
        wait.until(lambda _: "Encrypted" in text_of("#decrypt-out"))
        old_jwe = d.find_element(By.CSS_SELECTOR, "#decrypt textarea[name=jwe]").get_attribute("value")
        d.find_element(By.XPATH, "//tbody[@id='keys']//button[text()='Rotate']").click()
        wait.until(lambda _: "version 2 is now the latest" in text_of("#status"))
        click("#versions button")
        wait.until(lambda _: len(d.find_elements(By.CSS_SELECTOR, "#version-rows tr")) == 2)
        d.find_element(By.XPATH, "//tbody[@id='version-rows']//button[text()='Disable']").click()
        wait.until(lambda _: "disabled" in text_of("#version-rows"))
        click("#decrypt button")
        wait.until(lambda _: "Not decrypted" in text_of("#decrypt-out"))
        assert old_jwe, "the v1 ciphertext"
        return text_of("#version-rows")
    case("rotate, list versions, disable v1: its ciphertext is refused", rotation_and_versions)

    def signatures():
        Select(d.find_element(By.CSS_SELECTOR, "#create select[name=algorithm]")).select_by_visible_text("ES256")
        click("#create button")
        wait.until(lambda _: "2 elastic key(s)" in text_of("#status"))
        click("#sign button")
        wait.until(lambda _: "Signed" in text_of("#verify-out"))
        click("#verify button")
        wait.until(lambda _: "Valid. Message: hello" in text_of("#verify-out"))
        return text_of("#verify-out")
    case("create an ES256 key, sign and verify", signatures)

    def batch():
        Select(d.find_element(By.CSS_SELECTOR, "#batch select[name=id]")).select_by_index(0)
        click("#batch button")
        wait.until(lambda _: "3 item(s) encrypted, 0 failed" in text_of("#batch-out"))
        return text_of("#batch-out").splitlines()[0]
    case("batch-encrypt three lines", batch)

    def byok():
        # The import key shown by the page; jwcrypto wraps a new ES256 key to it.
        click("#importkey button")
        wait.until(lambda _: "RSA-OAEP-256" in text_of("#importkey-out"))
        import_key = jwk.JWK(**json.loads(text_of("#importkey-out")))
        mine = jwk.JWK.generate(kty="EC", crv="P-256")
        wrapped = jwe.JWE(mine.export_private().encode(),
                          json.dumps({"alg": "RSA-OAEP-256", "enc": "A256GCM"}))
        wrapped.add_recipient(import_key)
        Select(d.find_element(By.CSS_SELECTOR, "#create select[name=algorithm]")).select_by_visible_text("ES256")
        d.find_element(By.CSS_SELECTOR, "#create input[name=exportable]").click()
        click("#create button")
        wait.until(lambda _: "3 elastic key(s)" in text_of("#status"))
        rows = d.find_elements(By.CSS_SELECTOR, "#keys tr")
        exportable = [r for r in rows if "exportable" in r.text][0].find_element(By.CSS_SELECTOR, "td").text
        Select(d.find_element(By.CSS_SELECTOR, "#import select[name=id]")).select_by_value(exportable)
        d.find_element(By.CSS_SELECTOR, "#import textarea[name=jwe]").send_keys(wrapped.serialize(compact=True))
        click("#import button")
        wait.until(lambda _: "Imported: version 2" in text_of("#status"))
        # Export to a key of ours: jwcrypto opens it and finds the imported key.
        recipient = jwk.JWK.generate(kty="RSA", size=2048)
        public = json.loads(recipient.export_public())
        public["alg"] = "RSA-OAEP-256"
        Select(d.find_element(By.CSS_SELECTOR, "#export select[name=id]")).select_by_value(exportable)
        d.find_element(By.CSS_SELECTOR, "#export textarea[name=jwk]").send_keys(json.dumps(public))
        click("#export button")
        wait.until(lambda _: text_of("#export-out").count(".") == 4)
        box = jwe.JWE()
        box.deserialize(text_of("#export-out"), key=recipient)
        assert json.loads(box.payload)["d"] == json.loads(mine.export_private())["d"]
        return "imported and exported"
    case("import a key jwcrypto wrapped, export it back to jwcrypto", byok)

    def audit():
        click("#audit button")
        wait.until(lambda _: "audit record(s)" in text_of("#status"))
        rows = text_of("#audit-rows")
        for op in ["create", "encrypt", "decrypt", "datakey", "rotate", "disable-version", "sign", "verify",
                   "batch-encrypt", "import", "export"]:
            assert op in rows, (op, rows)
        assert "error" in rows, "the refused decryption is there too"
        return text_of("#status")
    case("the tenant's audit log shows every operation", audit)

    def clean_console():
        # Refused calls answer 4xx on purpose (signed out: 401; a disabled version: 403).
        return console_clean(d, ["status of 401", "status of 403"])
    case("no CSP violation or script error in the console", clean_console)

    d.quit()
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
