"""An independent relying party: Apache httpd with mod_auth_openidc (Debian's
libapache2-mod-auth-openidc) protects a page, and headless Chromium signs in through
identity-authz and identity-idp to see it.

Usage: apache_openidc.py PORT AUTHZ CA CLIENT_ID CLIENT_SECRET USERNAME PASSWORD IDP CERT KEY
       OTHER_CLIENT_ID OTHER_CLIENT_SECRET

Apache listens on https://127.0.0.1:PORT (CERT and KEY: from a CA identity-authz trusts, for
the logout tokens it posts; Chromium trusts it by its key, chromium.py) and protects /protected/ with
`AuthType openid-connect`: discovery at AUTHZ (verified against CA), the code flow with PKCE
S256 and a nonce, client_secret_basic at the token endpoint, the ID token validated by
mod_auth_openidc against the published JWK Set. Cases:

1. /protected/ sends the browser to the login page; after the password it serves the page;
2. mod_auth_openidc's info hook shows the session: the ID token's iss, aud and sub;
3. mod_auth_openidc's logout goes through identity-authz's end-session endpoint and back; the
   page needs a sign-in again;
4. identity-authz ends a session mod_auth_openidc knows through its back-channel logout
   endpoint (`?logout=backchannel`): OTHER_CLIENT signs in through the same identity-authz
   session (single sign-on, its code redeemed by `requests`) and logs out with its ID token;
   mod_auth_openidc's session ends, and the page needs a sign-in again.

Prints {"results": [{"case", "ok", "detail"}]}; Apache's error log goes to stderr at the end.
"""

import base64
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from urllib.parse import parse_qs, urlparse

import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from authz_peer import Report
from chromium import browser, spki_hash, spki_hash_of_pem

MODULES = "/usr/lib/apache2/modules"


def apache(directory, port, authz, ca, client_id, secret, cert, key):
    base = f"https://127.0.0.1:{port}"
    docs = os.path.join(directory, "htdocs")
    os.makedirs(os.path.join(docs, "protected"))
    with open(os.path.join(docs, "protected", "index.html"), "w") as f:
        f.write("<!doctype html><title>protected</title><p id=\"content\">protected by mod_auth_openidc</p>\n")
    with open(os.path.join(docs, "bye.html"), "w") as f:
        f.write("<!doctype html><title>bye</title><p id=\"content\">signed out</p>\n")
    user = [] if os.geteuid() != 0 else ["User nobody", "Group nogroup"]
    # The worker reads the anchor identity-authz's certificate chains to.
    anchor = os.path.join(directory, "anchor.pem")
    shutil.copyfile(ca, anchor)
    os.chmod(anchor, 0o644)
    conf = "\n".join([
        f'ServerRoot "{directory}"',
        f"Listen 127.0.0.1:{port}",
        f"PidFile {directory}/httpd.pid",
        f"ErrorLog {directory}/error.log",
        "LogLevel warn auth_openidc:info",
        "ServerName 127.0.0.1",
        *user,
        f"LoadModule mpm_event_module {MODULES}/mod_mpm_event.so",
        f"LoadModule authz_core_module {MODULES}/mod_authz_core.so",
        f"LoadModule authn_core_module {MODULES}/mod_authn_core.so",
        f"LoadModule authz_user_module {MODULES}/mod_authz_user.so",
        f"LoadModule mime_module {MODULES}/mod_mime.so",
        f"LoadModule dir_module {MODULES}/mod_dir.so",
        "DirectoryIndex index.html",
        f"LoadModule socache_shmcb_module {MODULES}/mod_socache_shmcb.so",
        f"LoadModule ssl_module {MODULES}/mod_ssl.so",
        f"LoadModule auth_openidc_module {MODULES}/mod_auth_openidc.so",
        "TypesConfig /etc/mime.types",
        f'DocumentRoot "{docs}"',
        f'<Directory "{docs}">',
        "  Require all granted",
        "</Directory>",
        "SSLEngine on",
        "SSLProtocol -all +TLSv1.3",
        f"SSLCertificateFile {cert}",
        f"SSLCertificateKeyFile {key}",
        f"OIDCProviderMetadataURL {authz}/.well-known/openid-configuration",
        f"OIDCCABundlePath {anchor}",
        "OIDCSSLValidateServer On",
        f"OIDCClientID {client_id}",
        f"OIDCClientSecret {secret}",
        f"OIDCRedirectURI {base}/protected/redirect_uri",
        f"OIDCCryptoPassphrase {secrets.token_urlsafe(32)}",
        'OIDCScope "openid"',
        "OIDCResponseType code",
        "OIDCPKCEMethod S256",
        "OIDCProviderTokenEndpointAuth client_secret_basic",
        "OIDCInfoHook iat id_token session",
        "OIDCRemoteUserClaim sub",
        "OIDCCookieSameSite On",
        "<Location /protected>",
        "  AuthType openid-connect",
        "  Require valid-user",
        "</Location>",
        "",
    ])
    path = os.path.join(directory, "httpd.conf")
    with open(path, "w") as f:
        f.write(conf)
    # The worker drops to nobody: what it reads must be readable to it.
    for p in [directory, docs, os.path.join(docs, "protected")]:
        os.chmod(p, 0o755)
    proc = subprocess.Popen(["apache2", "-X", "-f", path], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"apache2 exited: {proc.stderr.read().decode()}")
            time.sleep(0.1)
    raise SystemExit("apache2 did not listen")


def main():
    (_, port, authz, ca, client_id, secret, username, password, idp, cert_in, key_in,
     other_id, other_secret) = sys.argv
    port = int(port)
    base = f"https://127.0.0.1:{port}"
    directory = tempfile.mkdtemp()
    # The worker reads the key as root before it drops to nobody; the certificate is public.
    cert, key = os.path.join(directory, "apache.pem"), os.path.join(directory, "apache.key")
    shutil.copyfile(cert_in, cert)
    shutil.copyfile(key_in, key)
    os.chmod(key, 0o600)
    spki = spki_hash_of_pem(cert)
    proc = apache(directory, port, authz, ca, client_id, secret, cert, key)
    d = browser([spki, spki_hash(authz), spki_hash(idp)])
    wait = WebDriverWait(d, 40)

    def described(detail):
        """A failure with where the browser was, what it showed and Apache's last words."""
        with open(os.path.join(directory, "error.log")) as f:
            log = f.read().splitlines()[-8:]
        return {"detail": f"{detail} at {d.current_url}", "page": d.page_source[:600], "apache": log}
    report = Report(describe=described)
    case = report.case

    def sign_in():
        d.get(f"{base}/protected/")
        wait.until(lambda _: d.current_url.startswith(f"{idp}/browser/login"))
        d.find_element(By.ID, "username").send_keys(username)
        d.find_element(By.ID, "password").send_keys(password)
        d.find_element(By.ID, "sign-in").click()
        wait.until(lambda _: d.current_url.startswith(f"{base}/protected/")
                   and d.find_elements(By.ID, "content"))
        text = d.find_element(By.ID, "content").text
        assert text == "protected by mod_auth_openidc", text
        return d.current_url
    case("mod_auth_openidc signs in through identity-authz and serves the protected page", sign_in)

    def sign_in_again():
        # The login page again (the last case signed out): the password, then the session's sid.
        sign_in()
        d.get(f"{base}/protected/redirect_uri?info=json")
        return json.loads(d.find_element(By.TAG_NAME, "body").text)["id_token"]["sid"]

    def info():
        d.get(f"{base}/protected/redirect_uri?info=json")
        body = json.loads(d.find_element(By.TAG_NAME, "body").text)
        token = body["id_token"]
        assert token["iss"] == authz and token["aud"] == client_id and token["sub"], token
        return {"iss": token["iss"], "aud": token["aud"], "sid": token.get("sid")}
    case("its session holds the ID token it validated (iss, aud, sub)", info)

    def logout():
        d.get(f"{base}/protected/redirect_uri?logout={base}/bye.html")
        wait.until(lambda _: d.current_url == f"{base}/bye.html")
        d.get(f"{base}/protected/")
        wait.until(lambda _: d.current_url.startswith(f"{idp}/browser/login"))
        return "signed out at identity-authz and back"
    case("its logout goes through identity-authz's end-session endpoint and back", logout)

    def back_channel():
        sid = sign_in_again()
        # The other client: PKCE, through the same session (no form), its code on bye.html.
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        meta = requests.get(f"{authz}/.well-known/openid-configuration", verify=ca, timeout=10).json()
        url = requests.Request("GET", meta["authorization_endpoint"], params={
            "response_type": "code", "client_id": other_id, "redirect_uri": f"{base}/bye.html",
            "scope": "openid", "state": secrets.token_urlsafe(16), "nonce": secrets.token_urlsafe(16),
            "code_challenge": challenge, "code_challenge_method": "S256"}).prepare().url
        d.get(url)
        wait.until(lambda _: d.current_url.startswith(f"{base}/bye.html?"))
        code = parse_qs(urlparse(d.current_url).query)["code"][0]
        tokens = requests.post(meta["token_endpoint"], auth=(other_id, other_secret), verify=ca, timeout=10,
                               data={"grant_type": "authorization_code", "code": code,
                                     "redirect_uri": f"{base}/bye.html", "code_verifier": verifier}).json()
        id_token = tokens["id_token"]
        claims = json.loads(base64.urlsafe_b64decode(id_token.split(".")[1] + "=="))
        assert claims["sid"] == sid, (claims, sid)
        d.get(f"{base}/protected/")
        assert d.find_element(By.ID, "content").text == "protected by mod_auth_openidc", "alive before"
        r = requests.get(meta["end_session_endpoint"], params={"id_token_hint": id_token},
                         verify=ca, timeout=10, allow_redirects=False)
        assert r.status_code == 200, r.text

        def ended(_):
            d.get(f"{base}/protected/")
            return d.current_url.startswith(f"{idp}/browser/login")
        WebDriverWait(d, 30, poll_frequency=0.5).until(ended)
        return {"sid": sid}
    case("identity-authz's back-channel logout ends mod_auth_openidc's session", back_channel)

    d.quit()
    proc.terminate()
    proc.wait(timeout=10)
    with open(os.path.join(directory, "error.log")) as f:
        sys.stderr.write(f.read())
    report.print()


if __name__ == "__main__":
    main()
