"""Relying parties' back-channel logout endpoint (OpenID Connect Back-Channel Logout 1.0 §2.5,
§2.6), judged by joserfc: it serves https://127.0.0.1:PORT/logout (TLS 1.3) with CERT/KEY,
prints "ready", validates each POST's logout_token against identity-authz's JWK Set, answers
200 (400 if invalid), and after EXPECTED posts waits 2 s more (a duplicate or an extra post is
reported too), then prints one JSON report, one result per post.

Usage: backchannel_receiver.py PORT CERT KEY AUTHZ_BASE CA_PEM CLIENT_IDS EXPECTED
       (CLIENT_IDS comma-separated: the clients whose endpoint this is)

Validation (§2.6): a JWT signed by a key of the issuer's JWK Set (ES256), header typ
logout+jwt; iss the issuer, aud one of the clients, iat, exp and jti present and exp not
passed, an events claim holding the member http://schemas.openid.net/event/backchannel-logout
with a JSON object as its value, sid present (the RPs register for sessions), no nonce.
"""

import json
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer

from joserfc import jwt

from authz_peer import discover

EVENT = "http://schemas.openid.net/event/backchannel-logout"


def main():
    _, port, cert, key, authz, ca, client_ids, expected = sys.argv
    clients = client_ids.split(",")
    _, issuer, keys = discover(authz, ca)
    results = []
    lock = threading.Lock()
    done = threading.Event()

    def validate(body, content_type):
        assert content_type.split(";")[0].strip() == "application/x-www-form-urlencoded", content_type
        form = urllib.parse.parse_qs(body.decode(), strict_parsing=True)
        assert list(form) == ["logout_token"] and len(form["logout_token"]) == 1, form
        token = jwt.decode(form["logout_token"][0], keys, algorithms=["ES256"])
        assert token.header.get("typ") == "logout+jwt", token.header
        claims = token.claims
        registry = jwt.JWTClaimsRegistry(
            now=int(time.time()), leeway=5,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "values": clients},
            iat={"essential": True},
            exp={"essential": True},
            jti={"essential": True},
            sid={"essential": True},
        )
        registry.validate(claims)
        assert isinstance(claims.get("events"), dict) and claims["events"].get(EVENT) == {}, claims
        assert "nonce" not in claims, claims
        return {"sid": claims["sid"], "sub": claims.get("sub"), "aud": claims["aud"]}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            try:
                detail = validate(body, self.headers.get("Content-Type", ""))
                result = {"case": "logout token", "ok": True, "detail": detail}
                self.send_response(200)
            except Exception as e:  # the report carries every failure
                result = {"case": "logout token", "ok": False, "detail": f"{type(e).__name__}: {e}"}
                self.send_response(400)
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", "0")
            self.end_headers()
            with lock:
                results.append(result)
                if len(results) >= int(expected):
                    done.set()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", int(port)), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    if done.wait(60):
        time.sleep(2)
    server.shutdown()
    with lock:
        if len(results) < int(expected):
            results.append({"case": "logout token", "ok": False,
                            "detail": f"{len(results)} of {expected} logout tokens within 60 s"})
    print(json.dumps({"results": results}), flush=True)


if __name__ == "__main__":
    main()
