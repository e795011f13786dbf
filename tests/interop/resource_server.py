"""identity-rs (the reference resource server) used by independent clients.

Usage: resource_server.py AUTHZ_BASE RS_BASE KMS_BASE CA_PEM CLIENT_ID CLIENT_SECRET

Authlib fetches client-credentials tokens from identity-authz (RFC 8707 `resource` naming
identity-rs or another service), joserfc validates them against the published JWK Set and makes
RFC 9449 DPoP proofs, and `requests` reads identity-rs's answers and their `WWW-Authenticate`
challenges (RFC 6750 §3, RFC 9449 §7.1, RFC 9470 §3) and its RFC 9728 metadata.
Prints one JSON object: {"results": [{"case", "ok", "detail"}]}.
"""

import sys

from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import ECKey

import dpop_proof
from authz_peer import Report, discover
from authz_peer import session as tls_session

PHR = "urn:cryptoutil:acr:phr"


def challenges(r):
    return r.headers.get("WWW-Authenticate", "")


def main():
    _, authz, rs, kms, ca, client_id, secret = sys.argv
    report = Report()
    case = report.case
    http = tls_session(ca)
    meta, issuer, keys = discover(authz, ca)
    token_endpoint = meta["token_endpoint"].replace(issuer, authz)
    notes = f"{rs}/service/api/v1/notes"

    def fetch(scope, resource):
        session = OAuth2Session(client_id, secret, scope=scope)
        session.trust_env = False
        session.verify = ca
        extra = {"resource": resource} if resource else {}
        tok = session.fetch_token(token_endpoint, grant_type="client_credentials", **extra)
        return tok["access_token"]

    def bearer(token):
        return {"authorization": f"Bearer {token}"}

    def metadata():
        r = http.get(f"{rs}/.well-known/oauth-protected-resource", timeout=10)
        assert r.status_code == 200, (r.status_code, r.text)
        doc = r.json()
        # RFC 9728 §3.3: the resource identifier is the URL the metadata was fetched under.
        assert doc["resource"] == rs.rstrip("/"), doc
        assert issuer in doc["authorization_servers"], (issuer, doc)
        assert set(doc["scopes_supported"]) == {"notes:read", "notes:write"}, doc
        assert "ES256" in doc["dpop_signing_alg_values_supported"], doc
        return doc
    case("RFC 9728 metadata names the resource, its issuer and scopes", metadata)

    def plain_bearer():
        token = fetch("notes:read notes:write", rs)
        claims = jwt.decode(token, keys, algorithms=["ES256"]).claims
        assert claims["aud"] == "identity-rs", claims
        r = http.post(notes, json={"title": "from authlib", "body": "hi"}, headers=bearer(token), timeout=10)
        assert r.status_code == 201, (r.status_code, r.text)
        note = r.json()
        listed = http.get(notes, headers=bearer(token), timeout=10).json()["notes"]
        assert note in listed, listed
        one = http.get(f"{notes}/{note['id']}", headers=bearer(token), timeout=10)
        assert one.status_code == 200 and one.json() == note, one.text
        return {"id": note["id"], "aud": claims["aud"]}
    case("a bearer token for identity-rs writes and reads notes", plain_bearer)

    def missing():
        r = http.get(notes, timeout=10)
        www = challenges(r)
        assert r.status_code == 401, r.status_code
        assert www.startswith("Bearer realm=") and "DPoP algs=" in www, www
        return www
    case("no token: 401 offering the Bearer and DPoP schemes", missing)

    def other_audience():
        token = fetch("notes:read", kms)
        assert jwt.decode(token, keys, algorithms=["ES256"]).claims["aud"] == "kms"
        r = http.get(notes, headers=bearer(token), timeout=10)
        www = challenges(r)
        assert r.status_code == 401 and 'error="invalid_token"' in www, (r.status_code, www)
        forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        r = http.get(notes, headers=bearer(forged), timeout=10)
        assert r.status_code == 401 and 'error="invalid_token"' in challenges(r), r.status_code
        return www
    case("a token for another audience, or forged: invalid_token", other_audience)

    def lacking_scope():
        token = fetch("notes:read", rs)
        r = http.post(notes, json={"title": "x"}, headers=bearer(token), timeout=10)
        www = challenges(r)
        assert r.status_code == 403, (r.status_code, r.text)
        assert 'error="insufficient_scope"' in www and 'scope="notes:write"' in www, www
        return www
    case("a token without the route's scope: 403 insufficient_scope", lacking_scope)

    def dpop():
        key, other = ECKey.generate_key("P-256"), ECKey.generate_key("P-256")

        def proof(htm, htu, ath=None, signer=key):
            return dpop_proof.proof(signer, htm, htu, ath)

        r = http.post(token_endpoint,
                      data={"grant_type": "client_credentials", "scope": "notes:read", "resource": rs},
                      auth=(client_id, secret), headers={"DPoP": proof("POST", token_endpoint)}, timeout=10)
        assert r.status_code == 200, (r.status_code, r.text)
        at = r.json()["access_token"]
        assert jwt.decode(at, keys, algorithms=["ES256"]).claims["cnf"] == {"jkt": key.thumbprint()}
        ath = dpop_proof.ath(at)

        def call(scheme, dpop_header):
            headers = {"authorization": f"{scheme} {at}"}
            if dpop_header:
                headers["DPoP"] = dpop_header
            r = http.get(notes, headers=headers, timeout=10)
            return r.status_code, challenges(r)

        good = proof("GET", notes, ath)
        seen = {
            "fresh proof": call("DPoP", good),
            "replayed proof": call("DPoP", good),
            "no proof": call("DPoP", None),
            "another key": call("DPoP", proof("GET", notes, ath, signer=other)),
            "another URI": call("DPoP", proof("GET", f"{rs}/service/api/v1/other", ath)),
            "as a bearer token": call("Bearer", None),
        }
        assert seen["fresh proof"][0] == 200, seen
        for name in ["replayed proof", "no proof", "another key", "another URI"]:
            status, www = seen[name]
            assert status == 401 and www.startswith('DPoP error="invalid_dpop_proof"'), (name, status, www)
        status, www = seen["as a bearer token"]
        assert status == 401 and 'error="invalid_token"' in www, (status, www)
        # Bound and proved, but without the route's scope: the challenge names the DPoP scheme.
        r = http.post(notes, json={"title": "x"}, timeout=10,
                      headers={"authorization": f"DPoP {at}", "DPoP": proof("POST", notes, ath)})
        www = challenges(r)
        assert r.status_code == 403 and www.startswith("DPoP ") and 'error="insufficient_scope"' in www, \
            (r.status_code, www)
        return {k: v[0] for k, v in seen.items()}
    case("DPoP-bound token: a fresh joserfc proof reads; missing or replayed proofs are invalid_dpop_proof", dpop)

    def step_up():
        token = fetch("notes:read notes:write", rs)
        r = http.post(notes, json={"title": "keep"}, headers=bearer(token), timeout=10)
        assert r.status_code == 201, r.text
        note = r.json()
        r = http.delete(f"{notes}/{note['id']}", headers=bearer(token), timeout=10)
        www = challenges(r)
        assert r.status_code == 401, (r.status_code, r.text)
        assert 'error="insufficient_user_authentication"' in www and f'acr_values="{PHR}"' in www, www
        still = http.get(f"{notes}/{note['id']}", headers=bearer(token), timeout=10)
        assert still.status_code == 200, still.status_code
        return www
    case("delete without a phishing-resistant sign-in: RFC 9470 step-up challenge", step_up)

    def isolation():
        # Another client of the tenant sees none of this client's notes: owners are `sub`s.
        admin = fetch("identity", None)
        r = http.post(f"{authz}/service/api/v1/identity/clients",
                      json={"name": "second notes client", "scopes": ["notes:read"]},
                      headers=bearer(admin), timeout=10)
        assert r.status_code == 201, (r.status_code, r.text)
        other = r.json()
        session = OAuth2Session(other["client_id"], other["client_secret"], scope="notes:read")
        session.trust_env = False
        session.verify = ca
        token = session.fetch_token(token_endpoint, grant_type="client_credentials", resource=rs)["access_token"]
        listed = http.get(notes, headers=bearer(token), timeout=10)
        assert listed.status_code == 200 and listed.json() == {"notes": []}, listed.text
        return listed.json()
    case("another client sees none of the first client's notes", isolation)

    report.print()


if __name__ == "__main__":
    main()
