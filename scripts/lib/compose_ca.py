#!/usr/bin/env python3
"""The Compose suite's CA, set up through the CA product's own API (run by scripts/compose-up;
standard library only).

  compose_ca.py bootstrap OUT   makes (once) the profile `suite-tls`, the root CA `suite` and
                                the label `default`, and writes the root's certificate to OUT
  compose_ca.py presented ROOT  waits until every published cryptoutil listener presents a
                                certificate that chains to ROOT alone (the CA product's root)

`suite-tls` is tls-server with a validity of CRYPTOUTIL_COMPOSE_LEAF_VALIDITY (default 4m): the
services renew two thirds into a certificate's life counted from when it came (about every
160 s), and through a CA outage serve on the one they have until its last tenth, then on
their `pki issue` leaf. Tokens come from the bootstrap client in
identity-authz's data volume (bootstrap.json, read with `docker cp`).
"""

import base64
import http.client
import io
import json
import os
import ssl
import subprocess
import sys
import tarfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SUITE_CA = os.path.join(ROOT, "compose", "secrets", "trust.pem")
AUTHZ = ("127.0.0.1", 8180)
CA = ("127.0.0.1", 8380)
PUBLISHED = {
    "identity-authz": 8180, "identity-idp": 8181, "identity-rs": 8182, "identity-rp": 8183,
    "identity-spa": 8184, "kms": 8080, "jose": 8280, "ca": 8380,
}
VALIDITY = os.environ.get("CRYPTOUTIL_COMPOSE_LEAF_VALIDITY", "4m")
# The only names a suite certificate may carry: the root's name constraints and the profile's
# patterns keep a client of the `ca` scope (every container holds the federation client's
# secret) from minting a certificate for anything else. `localhost` is every leaf's too
# (`tls.hostnames`' default).
NAMES = sorted(PUBLISHED) + ["localhost"]


def context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def request(addr, method, path, body=None, headers=None, ctx=None):
    conn = http.client.HTTPSConnection(addr[0], addr[1], context=ctx or context(SUITE_CA),
                                       timeout=15)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def bootstrap_json():
    """bootstrap.json from identity-authz's data volume: its container's, or with the scale
    file (identity-authz is then the balancer) that of the replica that bootstrapped."""
    for service in ("identity-authz", "identity-authz-1", "identity-authz-2"):
        cid = subprocess.run(["docker-compose", "ps", "-q", service], cwd=ROOT,
                             capture_output=True, text=True).stdout.strip()
        if not cid:
            continue
        out = subprocess.run(["docker", "cp", cid + ":/data/bootstrap.json", "-"],
                             capture_output=True)
        if out.returncode == 0:
            return json.load(tarfile.open(fileobj=io.BytesIO(out.stdout)).extractfile("bootstrap.json"))
    raise SystemExit("no identity-authz container holds bootstrap.json")


def token():
    boot = bootstrap_json()
    c = boot["service_client"]
    basic = base64.b64encode((c["client_id"] + ":" + c["client_secret"]).encode()).decode()
    status, body = request(AUTHZ, "POST", "/service/oauth2/v1/token",
                           "grant_type=client_credentials&scope=ca",
                           {"authorization": "Basic " + basic,
                            "content-type": "application/x-www-form-urlencoded"})
    if status != 200:
        sys.exit("token: %s %s" % (status, body))
    return json.loads(body)["access_token"]


def api(tok, method, path, body=None, ok=(200, 201)):
    headers = {"authorization": "Bearer " + tok, "content-type": "application/json"}
    status, raw = request(CA, method, "/service/api/v1/ca" + path,
                          json.dumps(body) if body is not None else None, headers)
    if status not in ok:
        sys.exit("%s %s: %s %s" % (method, path, status, raw.decode(errors="replace")))
    return status, (json.loads(raw) if raw else None)


def minutes(text):
    units = {"m": 1, "h": 60, "d": 1440}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        sys.exit("CRYPTOUTIL_COMPOSE_LEAF_VALIDITY: minutes, hours or days (4m, 2h, 1d)")
    return int(text[:-1]) * units[text[-1]]


def bootstrap(out):
    # Leaves are back-dated 5 minutes and renewed two thirds into their life: under 3 minutes
    # of validity a renewal would be due (nearly) at once.
    if minutes(VALIDITY) < 3:
        sys.exit("CRYPTOUTIL_COMPOSE_LEAF_VALIDITY is at least 3m")
    tok = token()
    _, labels = api(tok, "GET", "/labels")
    label = next((l for l in labels["labels"] if l["label"] == "default"), None)
    if label is None:
        _, profiles = api(tok, "GET", "/profiles")
        if not any(p["name"] == "suite-tls" for p in profiles["profiles"]):
            api(tok, "POST", "/profiles", {
                "name": "suite-tls", "key_usages": ["digitalSignature"],
                "extended_key_usages": ["serverAuth"], "allowed_sans": ["dns", "ip"],
                "required_san": ["dns"], "dns_patterns": NAMES,
                "ip_ranges": ["127.0.0.0/8"], "max_validity": VALIDITY})
        else:
            print("the profile suite-tls exists: its validity stays (CRYPTOUTIL_COMPOSE_LEAF_VALIDITY"
                  " applies to a new suite only)")
        # A root left by an interrupted run is used again.
        _, cas = api(tok, "GET", "/cas")
        root = next((c for c in cas["cas"] if c["name"] == "suite"), None)
        if root is None:
            _, root = api(tok, "POST", "/cas", {
                "name": "suite", "subject": {"common_name": "cryptoutil Suite Root"},
                "key": "P-256", "path_len": 0, "permitted_dns": NAMES})
        api(tok, "POST", "/labels", {"label": "default", "ca": root["id"],
                                     "profile": "suite-tls", "approval": "auto"})
        pem = root["certificate"]
        print("made the root CA %s, the profile suite-tls (%s) and the label default"
              % (root["id"], VALIDITY))
    else:
        _, ca = api(tok, "GET", "/cas/" + label["ca"])
        pem = ca["certificate"]
        print("the label default exists (CA %s)" % label["ca"])
    with open(out, "w") as f:
        f.write(pem)


def presented(root_file, within=90):
    ctx = context(root_file)
    waiting = dict(PUBLISHED)
    deadline = time.monotonic() + within
    while waiting and time.monotonic() < deadline:
        for service, port in list(waiting.items()):
            try:
                status, _ = request(("127.0.0.1", port), "GET", "/admin/v1/livez", ctx=ctx)
                # Any answer over a verified handshake will do (the public listener has no
                # admin routes): the certificate chains to the CA product's root.
                del waiting[service]
            except (ssl.SSLError, OSError):
                pass
        time.sleep(0.5)
    if waiting:
        sys.exit("not presenting a certificate from the CA product within %d s: %s"
                 % (within, ", ".join(sorted(waiting))))
    print("all %d services present a certificate from the CA product" % len(PUBLISHED))


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("bootstrap", "presented"):
        sys.exit(__doc__)
    (bootstrap if sys.argv[1] == "bootstrap" else presented)(sys.argv[2])
