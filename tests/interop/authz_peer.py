"""What the OAuth interop scripts share: a report of named cases (one JSON object on stdout,
{"results": [{"case", "ok", "detail"}]}), and identity-authz's discovery document and JWK Set
read over TLS trusting exactly the suite's anchor."""

import json

import requests
from joserfc.jwk import KeySet


class Report:
    """Runs cases, keeping each one's outcome: a failure is reported, never raised.

    `describe(detail)` returns what a failure's entry should say besides (a browser test: where
    the page was, and what it showed); `after()` runs after every case (a browser test: read the
    console)."""

    def __init__(self, describe=None, after=None):
        self.results = []
        self.describe = describe
        self.after = after

    def case(self, name, fn):
        try:
            detail = fn()
            self.results.append({"case": name, "ok": True, "detail": detail})
        except Exception as e:  # the report carries every failure
            entry = {"case": name, "ok": False, "detail": f"{type(e).__name__}: {e}"}
            if self.describe:
                entry.update(self.describe(entry["detail"]))
            self.results.append(entry)
        if self.after:
            self.after()

    def ok(self):
        return all(r["ok"] for r in self.results)

    def print(self):
        print(json.dumps({"results": self.results}), flush=True)


def session(ca):
    """A requests session trusting exactly `ca` (environment CA bundles would override it)."""
    http = requests.Session()
    http.trust_env = False
    http.verify = ca
    return http


def discover(base, ca):
    """identity-authz's metadata, its issuer and its JWK Set (URLs rebased on `base`, the
    address the test reaches it at)."""
    http = session(ca)
    meta = http.get(f"{base}/.well-known/openid-configuration", timeout=10).json()
    issuer = meta["issuer"]
    keys = KeySet.import_key_set(http.get(meta["jwks_uri"].replace(issuer, base), timeout=10).json())
    return meta, issuer, keys
