"""Client-certificate sign-in judged by Python's TLS stack (OpenSSL, through requests) and
Authlib, none of it ours.

Usage:
  certificate_signin.py make DIR
      A CA and client certificates it signed (cryptography), written to DIR: ca.pem; lee.pem/.key
      (email SAN lee@example.com, clientAuth), max.pem/.key (no email, clientAuth: registered by
      fingerprint), server-only.pem/.key (lee's email, serverAuth only), and stranger.pem/.key
      (lee's email, from another CA), no-eku.pem/.key (lee's email, no extended key usage),
      revoked.pem/.key (lee's email, clientAuth, listed in ca.crl), expired.pem/.key (lee's email,
      clientAuth, expired a minute ago); ca.crl (PEM, current for a day) and ca.key, with which
      `run` re-writes ca.crl to revoke max's certificate too.
  certificate_signin.py run AUTHZ_BASE SUITE_CA CLIENT_ID CLIENT_SECRET REDIRECT_URI DIR MAX_SUB
      Each case starts an authorization request and, on identity-idp's login page, presses
      "Sign in with your certificate" over a connection that presented (or not) a certificate.
      identity-idp checks revocation against DIR/ca.crl (identity.certificate_crls).
      Prints {"results": [{"case", "ok", "detail"}]}.
"""

import datetime
import json
import os
import sys
import time
from html.parser import HTMLParser

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from joserfc import jwt
from joserfc.jwk import KeySet


def make(directory):
    now = datetime.datetime.now(datetime.timezone.utc)

    def ca(name):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                             False), critical=True)
                .sign(key, hashes.SHA256()))
        return key, cert

    def leaf(issuer, name, email, usage, expired=False):
        issuer_key, issuer_cert = issuer
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .issuer_name(issuer_cert.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + (datetime.timedelta(minutes=-1) if expired
                                           else datetime.timedelta(days=1))))
        if usage:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if email:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
        cert = builder.sign(issuer_key, hashes.SHA256())
        with open(os.path.join(directory, f"{name}.pem"), "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(os.path.join(directory, f"{name}.key"), "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        return cert

    ours, theirs = ca("sign-in CA"), ca("another CA")
    with open(os.path.join(directory, "ca.pem"), "wb") as f:
        f.write(ours[1].public_bytes(serialization.Encoding.PEM))
    leaf(ours, "lee", "Lee@Example.com", ExtendedKeyUsageOID.CLIENT_AUTH)
    leaf(ours, "max", None, ExtendedKeyUsageOID.CLIENT_AUTH)
    leaf(ours, "server-only", "lee@example.com", ExtendedKeyUsageOID.SERVER_AUTH)
    leaf(ours, "no-eku", "lee@example.com", None)
    leaf(theirs, "stranger", "lee@example.com", ExtendedKeyUsageOID.CLIENT_AUTH)
    revoked = leaf(ours, "revoked", "lee@example.com", ExtendedKeyUsageOID.CLIENT_AUTH)
    leaf(ours, "expired", "lee@example.com", ExtendedKeyUsageOID.CLIENT_AUTH, expired=True)
    with open(os.path.join(directory, "ca.key"), "wb") as f:
        f.write(ours[0].private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    write_crl(directory, [revoked.serial_number])


def write_crl(directory, serials):
    """ca.crl: the sign-in CA's revocation list (PEM) listing `serials`, current for a day."""
    now = datetime.datetime.now(datetime.timezone.utc)
    with open(os.path.join(directory, "ca.pem"), "rb") as f:
        ca_cert = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(directory, "ca.key"), "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), None)
    builder = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
               .last_update(now - datetime.timedelta(minutes=1))
               .next_update(now + datetime.timedelta(days=1))
               # RFC 5280 §5.2: what a conforming list carries (webpki insists).
               .add_extension(x509.CRLNumber(int(now.timestamp() * 1000)), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_key.public_key()), critical=False))
    for serial in serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial)
            .revocation_date(now - datetime.timedelta(minutes=1)).build())
    crl = builder.sign(ca_key, hashes.SHA256())
    path = os.path.join(directory, "ca.crl")
    with open(path + ".new", "wb") as f:
        f.write(crl.public_bytes(serialization.Encoding.PEM))
    os.replace(path + ".new", path)


class Page(HTMLParser):
    """The certificate form's hidden inputs and the alert text of an HTML page."""

    def __init__(self):
        super().__init__()
        self.fields, self.alert, self._form, self._in_alert = {}, None, None, False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._form = a.get("id")
        if tag == "input" and a.get("type") == "hidden" and self._form == "certificate-form":
            self.fields[a["name"]] = a.get("value", "")
        if a.get("role") == "alert":
            self._in_alert = True

    def handle_data(self, data):
        if self._in_alert:
            self.alert = data.strip()
            self._in_alert = False


def run(authz, suite_ca, client_id, secret, redirect_uri, directory, max_sub):
    results = []
    meta = requests.get(f"{authz}/.well-known/openid-configuration", verify=suite_ca,
                        timeout=10).json()
    keys = KeySet.import_key_set(requests.get(meta["jwks_uri"], verify=suite_ca, timeout=10).json())

    def case(name, fn):
        try:
            results.append({"case": name, "ok": True, "detail": fn()})
        except Exception as e:  # the report carries every failure
            results.append({"case": name, "ok": False, "detail": f"{type(e).__name__}: {e}"})

    def attempt(cert):
        """The login page over a connection presenting `cert` (a name in DIR, or None), and
        its certificate button pressed: (the answer, the RP session, verifier, nonce)."""
        browser = requests.Session()
        browser.trust_env = False
        browser.verify = suite_ca
        if cert:
            browser.cert = (os.path.join(directory, f"{cert}.pem"),
                            os.path.join(directory, f"{cert}.key"))
        session = OAuth2Session(client_id, secret, scope="openid", redirect_uri=redirect_uri,
                                code_challenge_method="S256")
        session.trust_env = False
        session.verify = suite_ca
        verifier, nonce = generate_token(48), generate_token(20)
        uri, _ = session.create_authorization_url(meta["authorization_endpoint"],
                                                  code_verifier=verifier, nonce=nonce)
        r = browser.get(uri, allow_redirects=False, timeout=10)
        assert r.status_code == 303, (r.status_code, r.text)
        login = r.headers["location"]
        page = browser.get(login, allow_redirects=False, timeout=10)
        assert page.status_code == 200, (page.status_code, page.text)
        form = Page()
        form.feed(page.text)
        assert set(form.fields) >= {"challenge", "csrf"}, form.fields
        origin = "/".join(login.split("/")[:3])
        answer = browser.post(f"{origin}/browser/login/certificate", data=form.fields,
                              headers={"origin": origin}, allow_redirects=False, timeout=30)
        return answer, session, verifier, nonce

    def signed_in(cert):
        answer, session, verifier, nonce = attempt(cert)
        assert answer.status_code == 303, (answer.status_code, answer.text)
        back = answer.headers["location"]
        assert back.startswith(redirect_uri + "?"), back
        tok = session.fetch_token(meta["token_endpoint"], authorization_response=back,
                                  code_verifier=verifier)
        token = jwt.decode(tok["id_token"], keys, algorithms=["ES256"])
        claims = CodeIDToken(
            token.claims, token.header,
            {"iss": {"essential": True, "value": meta["issuer"]},
             "aud": {"essential": True, "value": client_id},
             "nonce": {"essential": True, "value": nonce}},
            {"nonce": nonce, "access_token": tok["access_token"], "client_id": client_id})
        claims.validate(now=int(time.time()), leeway=5)
        assert token.claims["amr"] == ["sc"], token.claims
        assert token.claims["acr"] == "urn:cryptoutil:acr:password", token.claims
        return dict(token.claims)

    def refused(cert):
        answer, _, _, _ = attempt(cert)
        page = Page()
        page.feed(answer.text)
        assert answer.status_code == 200, (answer.status_code, answer.text)
        assert page.alert and "presented no certificate" in page.alert, answer.text
        return page.alert

    def by_email():
        claims = signed_in("lee")
        assert claims["sub"] != max_sub, claims
        return {"sub": claims["sub"], "amr": claims["amr"]}
    case("a certificate whose email address is a login name signs that user in (amr sc)",
         by_email)

    def by_fingerprint():
        claims = signed_in("max")
        assert claims["sub"] == max_sub, claims
        return {"sub": claims["sub"], "amr": claims["amr"]}
    case("a registered certificate (by fingerprint) signs its user in", by_fingerprint)

    case("a certificate from another CA is refused", lambda: refused("stranger"))
    case("a certificate not for client authentication is refused", lambda: refused("server-only"))
    case("a certificate that names no extended key usage is refused", lambda: refused("no-eku"))
    case("no certificate is refused", lambda: refused(None))
    case("a certificate listed in its CA's revocation list is refused", lambda: refused("revoked"))
    case("an expired certificate is refused", lambda: refused("expired"))

    def revoked_later():
        # The CA revokes max's certificate: the re-written list counts at the next sign-in.
        def serial(name):
            with open(os.path.join(directory, f"{name}.pem"), "rb") as f:
                return x509.load_pem_x509_certificate(f.read()).serial_number
        write_crl(directory, [serial("revoked"), serial("max")])
        alert = refused("max")
        # The new list was read, not refused: lee, whom it does not name, still signs in.
        claims = signed_in("lee")
        return {"max": alert, "lee": claims["amr"]}
    case("a certificate revoked after it signed in is refused at the next sign-in (list re-read)",
         revoked_later)
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2])
    else:
        run(*sys.argv[2:])
