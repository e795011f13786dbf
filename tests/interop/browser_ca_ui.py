"""A real browser (Debian's Chromium, headless, driven by Selenium) uses the CA UI.

Usage: browser_ca_ui.py CA_BASE USERNAME PASSWORD

Opens /browser/ui/ca/ signed out (the page says sign-in is required), signs in through
identity-idp's form, creates a root and a subordinate CA, issues a certificate from a request
the `cryptography` package made (pasted into the form) and checks it with `cryptography`,
revokes it and finds its serial in the CA's CRL as fetched by the page's link, puts a second
certificate on hold and releases it, sees a refused issuance explained, makes a manual EST
label and a one-time RA secret, enrolls over EST from the page's origin (202 while pending),
approves the request in the page and gets the certificate on the next EST request, reads the
tenant's audit log, and checks that the browser logged no CSP violation or script error. Prints
{"results": [{"case", "ok", "detail"}]}. The browser set-up is browser_ui.py's.
"""

import base64
import json
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec_wait
from selenium.webdriver.support.ui import Select

from browser_ui import console_clean, harness


def request(cn, encoding=serialization.Encoding.PEM):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    if encoding == serialization.Encoding.DER:
        return base64.b64encode(csr.public_bytes(encoding)).decode()
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def main():
    _, ca, username, password = sys.argv
    d, wait, results, case, text_of = harness()
    state = {}

    def click(selector):
        d.find_element(By.CSS_SELECTOR, selector).click()

    def choose(selector, prefix):
        select = Select(d.find_element(By.CSS_SELECTOR, selector))
        texts = [o.text for o in select.options]
        select.select_by_visible_text(next(t for t in texts if t.startswith(prefix)))

    def fill(selector, value):
        el = d.find_element(By.CSS_SELECTOR, selector)
        el.clear()
        el.send_keys(value)

    def signed_out():
        d.get(f"{ca}/browser/ui/ca/")
        wait.until(lambda _: "Sign in required" in text_of("#status"))
        return text_of("#status")
    case("signed out, the UI asks for a sign-in", signed_out)

    def sign_in():
        d.find_element(By.ID, "signin").click()
        wait.until(ec_wait.presence_of_element_located((By.ID, "username")))
        d.find_element(By.ID, "username").send_keys(username)
        d.find_element(By.ID, "password").send_keys(password)
        d.find_element(By.ID, "sign-in").click()
        wait.until(lambda _: "Signed in as" in text_of("#who"))
        assert d.current_url == f"{ca}/browser/ui/ca/", d.current_url
        wait.until(lambda _: "0 CA(s)" in text_of("#status"))
        wait.until(lambda _: "tls-server" in text_of("#profiles"))
        return text_of("#who")
    case("sign in through identity-idp's form and come back with a session", sign_in)

    def hierarchy():
        click("#create button")
        wait.until(lambda _: "Created my root" in text_of("#status"))
        fill("#create input[name=name]", "issuing")
        fill("#create input[name=cn]", "Example Issuing CA")
        Select(d.find_element(By.CSS_SELECTOR, "#create select[name=key]")).select_by_visible_text("P-256")
        choose("#create select[name=parent]", "my root")
        fill("#create input[name=path_len]", "0")
        click("#create button")
        wait.until(lambda _: "Created issuing" in text_of("#status"))
        wait.until(lambda _: len(d.find_elements(By.CSS_SELECTOR, "#cas tr")) == 2)
        return text_of("#cas")
    case("create a root and a subordinate CA", hierarchy)

    def issue():
        choose("#issue select[name=ca]", "issuing")
        Select(d.find_element(By.CSS_SELECTOR, "#issue select[name=profile]")).select_by_visible_text("tls-server")
        d.find_element(By.CSS_SELECTOR, "#issue textarea[name=csr]").send_keys(request("www.example.test"))
        click("#issue button")
        wait.until(lambda _: "Issued" in text_of("#issue-out"))
        out = text_of("#issue-out")
        pem = out[out.index("-----BEGIN CERTIFICATE-----"):out.index("-----END CERTIFICATE-----") + 25]
        cert = x509.load_pem_x509_certificate(pem.encode())
        assert cert.issuer.rfc4514_string() == "CN=Example Issuing CA", cert.issuer
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert ExtendedKeyUsageOID.SERVER_AUTH in eku, eku
        # Serials are 16 bytes, named by their lowercase hex (a leading zero digit kept).
        state["serial"] = format(cert.serial_number, "032x")
        return state["serial"]
    case("issue a tls-server certificate from a pasted request; cryptography reads it", issue)

    def revoke():
        choose("#certs select[name=ca]", "issuing")
        click("#certs button")
        wait.until(lambda _: state["serial"] in text_of("#cert-rows"))
        Select(d.find_element(By.ID, "reason")).select_by_visible_text("keyCompromise")
        row = d.find_element(By.XPATH, f"//tbody[@id='cert-rows']/tr[td[1]='{state['serial']}']")
        row.find_element(By.XPATH, ".//button[text()='Revoke']").click()
        wait.until(lambda _: "the CRL was signed anew" in text_of("#status"))
        wait.until(lambda _: "revoked (keyCompromise)" in text_of("#cert-rows"))
        # The CRL behind the page's link (same origin), read by cryptography.
        href = d.find_element(
            By.XPATH, "//tbody[@id='cas']/tr[td[2]='issuing']//a[text()='CRL']").get_attribute("href")
        b64 = d.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch(arguments[0]).then(r => r.arrayBuffer()).then(b => {"
            "  let s = ''; for (const x of new Uint8Array(b)) s += String.fromCharCode(x); done(btoa(s)); });",
            href)
        crl = x509.load_der_x509_crl(base64.b64decode(b64))
        entry = crl.get_revoked_certificate_by_serial_number(int(state["serial"], 16))
        assert entry is not None, "the revoked serial is on the CRL"
        reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        assert reason == x509.ReasonFlags.key_compromise, reason
        return f"on the CRL (number {crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number})"
    case("revoke it; the CRL the page links to lists it with its reason", revoke)

    def hold_and_release():
        fill("#issue textarea[name=csr]", request("held.example.test"))
        click("#issue button")
        wait.until(lambda _: "held.example.test" in text_of("#issue-out"))
        click("#certs button")
        wait.until(lambda _: len(d.find_elements(By.CSS_SELECTOR, "#cert-rows tr")) == 2)
        Select(d.find_element(By.ID, "reason")).select_by_visible_text("certificateHold")
        row = d.find_element(By.XPATH, "//tbody[@id='cert-rows']/tr[td[2]='CN=held.example.test']")
        row.find_element(By.XPATH, ".//button[text()='Revoke']").click()
        wait.until(lambda _: "on_hold (certificateHold)" in text_of("#cert-rows"))
        row = d.find_element(By.XPATH, "//tbody[@id='cert-rows']/tr[td[2]='CN=held.example.test']")
        row.find_element(By.XPATH, ".//button[text()='Release']").click()
        wait.until(lambda _: "is valid again" in text_of("#status"))
        return text_of("#cert-rows")
    case("hold a second certificate and release it", hold_and_release)

    def refused():
        Select(d.find_element(By.CSS_SELECTOR, "#issue select[name=profile]")).select_by_visible_text("email")
        fill("#issue textarea[name=csr]", request("mail.example.test"))
        click("#issue button")
        wait.until(lambda _: "Not issued" in text_of("#issue-out"))
        out = text_of("#issue-out")
        assert "subject_alt_names" in out, out
        return out
    case("a request its profile does not allow is refused, naming the field", refused)

    def enrollment_setup():
        fill("#label input[name=label]", "web")
        choose("#label select[name=ca]", "issuing")
        Select(d.find_element(By.CSS_SELECTOR, "#label select[name=profile]")).select_by_visible_text("tls-server")
        Select(d.find_element(By.CSS_SELECTOR, "#label select[name=approval]")).select_by_visible_text("manual")
        click("#label button")
        wait.until(lambda _: "Label web" in text_of("#status"))
        wait.until(lambda _: "/.well-known/est/web/" in text_of("#labels"))
        click("#secret button")
        wait.until(lambda _: "secret:" in text_of("#secret-out"))
        out = text_of("#secret-out")
        state["reference"] = out.split("reference: ")[1].split()[0]
        state["secret"] = out.split("secret: ")[1].split()[0]
        return state["reference"]
    case("make a manual EST label and a one-time enrollment secret", enrollment_setup)

    def est(body):
        # EST from the page's origin, as a device would call it (Basic reference:secret).
        return d.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch('/.well-known/est/web/simpleenroll', {method: 'POST', headers: {"
            "  'authorization': 'Basic ' + btoa(arguments[1] + ':' + arguments[2]),"
            "  'content-type': 'application/pkcs10'}, body: arguments[0]})"
            ".then(async (r) => done([r.status, await r.text()]));",
            body, state["reference"], state["secret"])

    def enroll_and_approve():
        from cryptography.hazmat.primitives.serialization import pkcs7
        body = request("device.example.test", serialization.Encoding.DER)
        code, _ = est(body)
        assert code == 202, code
        click("#requests button")
        wait.until(lambda _: "CN=device.example.test" in text_of("#request-rows"))
        row = d.find_element(By.XPATH, "//tbody[@id='request-rows']/tr[td[3]='CN=device.example.test']")
        row.find_element(By.XPATH, ".//button[text()='Approve']").click()
        wait.until(lambda _: "approved" in text_of("#status"))
        code, answer = est(body)
        assert code == 200, (code, answer)
        certs = pkcs7.load_der_pkcs7_certificates(base64.b64decode("".join(answer.split())))
        assert certs[0].subject.rfc4514_string() == "CN=device.example.test", certs[0].subject
        assert certs[0].issuer.rfc4514_string() == "CN=Example Issuing CA", certs[0].issuer
        return format(certs[0].serial_number, "032x")
    case("an EST request waits for the RA, is approved in the page, then answered", enroll_and_approve)

    def audit():
        click("#audit button")
        wait.until(lambda _: "audit record(s)" in text_of("#status"))
        rows = text_of("#audit-rows")
        for op in ["create-ca", "issue", "revoke", "release", "create-label", "ra-approve"]:
            assert op in rows, (op, rows)
        assert "error" in rows, "the refused issuance is there too"
        return text_of("#status")
    case("the tenant's audit log shows every operation", audit)

    def clean_console():
        # Refused calls answer 4xx on purpose (signed out: 401; the refused issuance: 400).
        return console_clean(d, ["status of 401", "status of 400"])
    case("no CSP violation or script error in the console", clean_console)

    d.quit()
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
