"""OAuth interop with Authlib (an independent OAuth 2.0 / OIDC client) against identity-authz.

Usage: oauth_interop.py client-credentials ISSUER_BASE CA_PEM CLIENT_ID CLIENT_SECRET JOSE_BASE

Discovers the server, fetches client-credentials tokens with client_secret_basic and
client_secret_post through Authlib's OAuth2Session, validates each access token with joserfc
(Authlib's JOSE library) against the published JWK Set (RFC 9068: typ at+jwt, iss, aud, exp),
calls the JOSE service with it, introspects and revokes a token (RFC 7662, RFC 7009), registers
a key-only client and authenticates it with an Authlib-signed private_key_jwt assertion
(RFC 7523), and checks that a wrong secret is refused as invalid_client.
Prints one JSON object: {"results": [{"case", "ok", "detail"}]}.
"""

import json
import sys
import time

import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from joserfc import jwt
from joserfc.jwk import KeySet


def main():
    _, mode, base, ca, client_id, secret, jose = sys.argv
    assert mode == "client-credentials", mode
    results = []

    def case(name, fn):
        try:
            detail = fn()
            results.append({"case": name, "ok": True, "detail": detail})
        except Exception as e:  # the report carries every failure
            results.append({"case": name, "ok": False, "detail": f"{type(e).__name__}: {e}"})

    meta = requests.get(f"{base}/.well-known/openid-configuration", verify=ca, timeout=10).json()
    issuer = meta["issuer"]
    keys = KeySet.import_key_set(requests.get(meta["jwks_uri"].replace(issuer, base), verify=ca, timeout=10).json())
    token_endpoint = meta["token_endpoint"].replace(issuer, base)

    def fetch(method, scope):
        session = OAuth2Session(client_id, secret, token_endpoint_auth_method=method, scope=scope)
        # Environment CA bundles would override `verify`: trust exactly the suite's anchor.
        session.trust_env = False
        session.verify = ca
        return session, session.fetch_token(token_endpoint, grant_type="client_credentials")

    def validate(access_token, audience):
        token = jwt.decode(access_token, keys, algorithms=["ES256"])
        assert token.header.get("typ") == "at+jwt", token.header
        registry = jwt.JWTClaimsRegistry(
            now=int(time.time()),
            leeway=5,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            client_id={"essential": True, "value": client_id},
        )
        registry.validate(token.claims)
        return token.claims

    for method in ["client_secret_basic", "client_secret_post"]:
        def flow(method=method):
            session, tok = fetch(method, "jose")
            assert tok["token_type"] == "Bearer" and tok["expires_in"] > 0, tok
            claims = validate(tok["access_token"], "jose")
            r = session.get(f"{jose}/service/api/v1/jose/jwks", timeout=10)
            assert r.status_code == 200, (r.status_code, r.text)
            return {"scope": claims["scope"], "tenant": claims["tenant"]}
        case(f"fetch, validate and use a token ({method})", flow)

    def introspect_and_revoke():
        session, tok = fetch("client_secret_basic", "jose kms")
        introspection = meta["introspection_endpoint"].replace(issuer, base)
        revocation = meta["revocation_endpoint"].replace(issuer, base)
        before = session.introspect_token(introspection, token=tok["access_token"]).json()
        assert before["active"] is True and before["scope"] == "jose kms", before
        r = session.revoke_token(revocation, token=tok["access_token"], token_type_hint="access_token")
        assert r.status_code == 200, (r.status_code, r.text)
        after = session.introspect_token(introspection, token=tok["access_token"]).json()
        assert after == {"active": False}, after
        return {"before": before["active"], "after": after["active"]}
    case("introspect, revoke, introspect (RFC 7662, RFC 7009)", introspect_and_revoke)

    def private_key_jwt():
        # Register a key-only client through the admin API, then let Authlib sign its assertion.
        from authlib.oauth2.rfc7523 import PrivateKeyJWT
        from joserfc.jwk import ECKey
        _, op = fetch("client_secret_basic", "identity")
        key = ECKey.generate_key("P-256")
        public = key.as_dict(private=False)
        public["alg"] = "ES256"
        r = requests.post(
            f"{base}/service/api/v1/identity/clients",
            json={"name": "authlib signer", "auth_methods": ["private_key_jwt"],
                  "jwks": {"keys": [public]}, "scopes": ["jose"]},
            headers={"authorization": f"Bearer {op['access_token']}"},
            verify=ca, timeout=10,
        )
        assert r.status_code == 201, (r.status_code, r.text)
        signer_id = r.json()["client_id"]
        session = OAuth2Session(signer_id, key,
                                token_endpoint_auth_method="private_key_jwt", scope="jose")
        session.trust_env = False
        session.verify = ca
        session.register_client_auth_method(PrivateKeyJWT(token_endpoint, alg="ES256"))
        tok = session.fetch_token(token_endpoint, grant_type="client_credentials")
        token = jwt.decode(tok["access_token"], keys, algorithms=["ES256"])
        assert token.claims["client_id"] == signer_id, token.claims
        return {"client_id": signer_id}
    case("private_key_jwt (RFC 7523) with an Authlib-signed assertion", private_key_jwt)

    def wrong_secret():
        session = OAuth2Session(client_id, "wrong-secret", token_endpoint_auth_method="client_secret_basic")
        session.trust_env = False
        session.verify = ca
        try:
            session.fetch_token(token_endpoint, grant_type="client_credentials")
        except OAuthError as e:
            assert e.error == "invalid_client", e.error
            return e.error
        raise AssertionError("a wrong secret got a token")
    case("a wrong secret is invalid_client", wrong_secret)

    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
