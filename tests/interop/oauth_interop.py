"""OAuth interop with Authlib (an independent OAuth 2.0 / OIDC client) against identity-authz.

Usage: oauth_interop.py client-credentials ISSUER_BASE CA_PEM CLIENT_ID CLIENT_SECRET JOSE_BASE
       oauth_interop.py code-flow ISSUER_BASE CA_PEM CLIENT_ID CLIENT_SECRET KMS_BASE
                        USERNAME PASSWORD REDIRECT_URI POST_LOGOUT_URI

Discovers the server, fetches client-credentials tokens with client_secret_basic and
client_secret_post through Authlib's OAuth2Session, validates each access token with joserfc
(Authlib's JOSE library) against the published JWK Set (RFC 9068: typ at+jwt, iss, aud, exp),
calls the JOSE service with it, introspects and revokes a token (RFC 7662, RFC 7009), registers
a key-only client and authenticates it with an Authlib-signed private_key_jwt assertion
(RFC 7523), and checks that a wrong secret is refused as invalid_client.

code-flow: Authlib builds the authorization request (PKCE S256, state, nonce); a requests
session plays the browser through identity-idp's login form (a wrong password first, then the
right one); Authlib redeems the code, Authlib's CodeIDToken validates the ID token (iss, aud,
exp, iat, auth_time, nonce, at_hash) after joserfc checked its signature against the JWK Set;
the access token calls KMS and userinfo; a second authorization request signs in silently
(single sign-on); the refresh token rotates, the rotated-out one is refused and its reuse kills
the family; a pushed authorization request (RFC 9126) works once; introspection and
revocation; RP-initiated logout ends the session.
Prints one JSON object: {"results": [{"case", "ok", "detail"}]}.
"""

import sys
import time
from html.parser import HTMLParser

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oidc.core import CodeIDToken
from joserfc import jwt

from authz_peer import Report, discover


def main():
    if sys.argv[1] == "code-flow":
        return code_flow(*sys.argv[2:])
    _, mode, base, ca, client_id, secret, jose = sys.argv
    assert mode == "client-credentials", mode
    report = Report()
    case = report.case
    meta, issuer, keys = discover(base, ca)
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

    def dpop():
        # RFC 9449 with proofs made by joserfc: the token is bound to the proof key's RFC 7638
        # thumbprint (computed by joserfc) and works only with a fresh proof by that key.
        import dpop_proof
        from joserfc.jwk import ECKey
        key, other = ECKey.generate_key("P-256"), ECKey.generate_key("P-256")

        def proof(htm, htu, ath=None, signer=key):
            return dpop_proof.proof(signer, htm, htu, ath)

        r = requests.post(token_endpoint, data={"grant_type": "client_credentials", "scope": "jose"},
                          auth=(client_id, secret), headers={"DPoP": proof("POST", token_endpoint)},
                          verify=ca, timeout=10)
        assert r.status_code == 200, (r.status_code, r.text)
        tok = r.json()
        assert tok["token_type"] == "DPoP", tok
        at = tok["access_token"]
        claims = jwt.decode(at, keys, algorithms=["ES256"]).claims
        assert claims["cnf"] == {"jkt": key.thumbprint()}, (claims["cnf"], key.thumbprint())
        url = f"{jose}/service/api/v1/jose/jwks"
        ath = dpop_proof.ath(at)

        def call(scheme, dpop_header):
            headers = {"authorization": f"{scheme} {at}"}
            if dpop_header:
                headers["DPoP"] = dpop_header
            return requests.get(url, headers=headers, verify=ca, timeout=10).status_code

        good = proof("GET", url, ath)
        statuses = {
            "dpop": call("DPoP", good),
            "replayed proof": call("DPoP", good),
            "as a bearer token": call("Bearer", None),
            "no proof": call("DPoP", None),
            "another key": call("DPoP", proof("GET", url, ath, signer=other)),
            "another URI": call("DPoP", proof("GET", f"{jose}/service/api/v1/info", ath)),
            "another method": call("DPoP", proof("POST", url, ath)),
            "no ath": call("DPoP", proof("GET", url)),
        }
        expected = {k: (200 if k == "dpop" else 401) for k in statuses}
        assert statuses == expected, statuses
        replay = requests.post(token_endpoint, data={"grant_type": "client_credentials", "scope": "jose"},
                               auth=(client_id, secret), headers={"DPoP": "not-a-proof"},
                               verify=ca, timeout=10)
        assert replay.status_code == 400 and replay.json()["error"] == "invalid_dpop_proof", replay.text
        return statuses
    case("DPoP (RFC 9449): joserfc proofs bind the token; misuse is refused", dpop)

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

    report.print()


class FormFields(HTMLParser):
    """The hidden inputs and the alert text of an HTML page."""

    def __init__(self):
        super().__init__()
        self.fields = {}
        self.alert = None
        self._in_alert = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("type") == "hidden":
            self.fields[a["name"]] = a.get("value", "")
        if a.get("role") == "alert":
            self._in_alert = True

    def handle_data(self, data):
        if self._in_alert:
            self.alert = data.strip()
            self._in_alert = False


def code_flow(base, ca, client_id, secret, kms, username, password, redirect_uri, post_logout):
    report = Report()
    case = report.case
    meta, issuer, keys = discover(base, ca)
    browser = requests.Session()
    browser.trust_env = False
    browser.verify = ca
    state = {}

    def rp():
        session = OAuth2Session(client_id, secret, scope="openid profile kms",
                                redirect_uri=redirect_uri, code_challenge_method="S256")
        session.trust_env = False
        session.verify = ca
        return session

    def authorize(session):
        verifier = generate_token(48)
        nonce = generate_token(20)
        uri, st = session.create_authorization_url(
            meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
        r = browser.get(uri, allow_redirects=False, timeout=10)
        assert r.status_code == 303, (r.status_code, r.text)
        return r.headers["location"], verifier, nonce, st

    def discovery():
        assert meta["code_challenge_methods_supported"] == ["S256"], meta
        assert "authorization_code" in meta["grant_types_supported"], meta
        assert meta["authorization_response_iss_parameter_supported"] is True, meta
        return {k: meta[k] for k in ["authorization_endpoint", "userinfo_endpoint", "end_session_endpoint"]}
    case("discovery announces the code flow with S256 only", discovery)

    def sign_in():
        session = rp()
        login, verifier, nonce, st = authorize(session)
        page = browser.get(login, allow_redirects=False, timeout=10)
        assert page.status_code == 200, (page.status_code, page.text)
        csp = page.headers["content-security-policy"]
        origin = "/".join(redirect_uri.split("/")[:3])
        assert f"form-action 'self' {origin}" in csp, csp
        form = FormFields()
        form.feed(page.text)
        origin_header = {"origin": "/".join(login.split("/")[:3])}
        wrong = browser.post(login.split("?")[0], data={**form.fields, "username": username,
                             "password": "not-the-password"}, headers=origin_header,
                             allow_redirects=False, timeout=30)
        assert wrong.status_code == 200, (wrong.status_code, wrong.text)
        again = FormFields()
        again.feed(wrong.text)
        assert again.alert == "The username or password is incorrect.", again.alert
        done = browser.post(login.split("?")[0], data={**again.fields, "username": username,
                            "password": password}, headers=origin_header,
                            allow_redirects=False, timeout=30)
        # A third-party client: the consent page, then Allow.
        assert done.status_code == 200 and "Allow access?" in done.text, (done.status_code, done.text)
        consent = FormFields()
        consent.feed(done.text)
        allowed = browser.post(login.split("/browser/login")[0] + "/browser/consent",
                               data={**consent.fields, "decision": "allow"}, headers=origin_header,
                               allow_redirects=False, timeout=30)
        assert allowed.status_code == 303, (allowed.status_code, allowed.text)
        back = allowed.headers["location"]
        assert back.startswith(redirect_uri + "?"), back
        assert f"state={st}" in back and "iss=" in back, back
        tok = session.fetch_token(meta["token_endpoint"], authorization_response=back,
                                  code_verifier=verifier)
        state.update(session=session, tok=tok, nonce=nonce)
        return {"scope": tok["scope"], "has_refresh": "refresh_token" in tok}
    case("authorization code + PKCE through the login form (a wrong password first) and consent",
         sign_in)

    def id_token():
        tok, nonce = state["tok"], state["nonce"]
        decoded = jwt.decode(tok["id_token"], keys, algorithms=["ES256"])
        claims = CodeIDToken(
            decoded.claims, decoded.header,
            {"iss": {"essential": True, "value": issuer},
             "aud": {"essential": True, "value": client_id},
             "nonce": {"essential": True, "value": nonce},
             "auth_time": {"essential": True}},
            {"nonce": nonce, "access_token": tok["access_token"], "client_id": client_id})
        claims.validate(now=int(time.time()), leeway=5)
        assert claims["amr"] == ["pwd"] and claims["acr"], dict(claims)
        assert claims["preferred_username"] == username, dict(claims)
        state["sub"] = claims["sub"]
        return {"sub": claims["sub"], "acr": claims["acr"], "at_hash": claims["at_hash"]}
    case("the ID token validates (signature, iss, aud, nonce, auth_time, at_hash)", id_token)

    def use_it():
        session = state["session"]
        r = session.get(f"{kms}/service/api/v1/info", timeout=10)
        assert r.status_code == 200, (r.status_code, r.text)
        info = session.get(meta["userinfo_endpoint"], timeout=10)
        assert info.status_code == 200, (info.status_code, info.text)
        claims = info.json()
        assert claims["sub"] == state["sub"] and claims["preferred_username"] == username, claims
        return claims
    case("the access token calls KMS and userinfo", use_it)

    def single_sign_on():
        session = rp()
        login, verifier, _, _ = authorize(session)
        r = browser.get(login, allow_redirects=False, timeout=10)
        assert r.status_code == 303, (r.status_code, r.text)
        tok = session.fetch_token(meta["token_endpoint"], authorization_response=r.headers["location"],
                                  code_verifier=verifier)
        return {"silent": True, "scope": tok["scope"]}
    case("a second authorization signs in silently with the session cookie", single_sign_on)

    def refresh():
        session, tok = state["session"], state["tok"]
        old = tok["refresh_token"]
        new = session.refresh_token(meta["token_endpoint"], refresh_token=old)
        assert new["refresh_token"] != old, new
        assert jwt.decode(new["access_token"], keys, algorithms=["ES256"]).claims["sub"] == state["sub"]
        reused = OAuth2Session(client_id, secret)
        reused.trust_env = False
        reused.verify = ca
        for label, token in [("rotated-out", old), ("latest, after the reuse", new["refresh_token"])]:
            try:
                reused.refresh_token(meta["token_endpoint"], refresh_token=token)
            except OAuthError as e:
                assert e.error == "invalid_grant", (label, e.error)
                continue
            raise AssertionError(f"the {label} refresh token still works")
        return {"rotated": True, "family_revoked": True}
    case("refresh rotates; reusing a rotated-out token revokes the family", refresh)

    def introspect_and_revoke():
        session = OAuth2Session(client_id, secret)
        session.trust_env = False
        session.verify = ca
        access = state["tok"]["access_token"]
        before = session.introspect_token(meta["introspection_endpoint"], token=access).json()
        assert before["active"] is True and before["sub"] == state["sub"], before
        r = session.revoke_token(meta["revocation_endpoint"], token=access)
        assert r.status_code == 200, (r.status_code, r.text)
        after = session.introspect_token(meta["introspection_endpoint"], token=access).json()
        assert after == {"active": False}, after
        return {"before": True, "after": False}
    case("introspect and revoke the user's access token", introspect_and_revoke)

    def pushed():
        # RFC 9126: push Authlib's authorization request, then send the browser by reference.
        from urllib.parse import parse_qsl, urlencode, urlsplit
        session = rp()
        verifier = generate_token(48)
        uri, st = session.create_authorization_url(
            meta["authorization_endpoint"], code_verifier=verifier, nonce=generate_token(20))
        params = dict(parse_qsl(urlsplit(uri).query))
        r = requests.post(meta["pushed_authorization_request_endpoint"], data=params,
                          auth=(client_id, secret), verify=ca, timeout=10)
        assert r.status_code == 201, (r.status_code, r.text)
        request_uri = r.json()["request_uri"]
        assert request_uri.startswith("urn:ietf:params:oauth:request_uri:"), request_uri
        by_ref = meta["authorization_endpoint"] + "?" + urlencode(
            {"client_id": client_id, "request_uri": request_uri})
        r = browser.get(by_ref, allow_redirects=False, timeout=10)
        assert r.status_code == 303, (r.status_code, r.text)
        r = browser.get(r.headers["location"], allow_redirects=False, timeout=10)
        assert r.status_code == 303, ("silent sign-in expected", r.status_code)
        tok = session.fetch_token(meta["token_endpoint"], authorization_response=r.headers["location"],
                                  code_verifier=verifier)
        again = browser.get(by_ref, allow_redirects=False, timeout=10)
        assert again.status_code == 400, ("a request_uri is single-use", again.status_code)
        return {"request_uri": "urn:...", "scope": tok["scope"]}
    case("pushed authorization request (RFC 9126), single use", pushed)

    def logout():
        r = browser.get(meta["end_session_endpoint"], params={
            "id_token_hint": state["tok"]["id_token"], "post_logout_redirect_uri": post_logout,
            "state": "bye"}, allow_redirects=False, timeout=10)
        assert r.status_code == 303, (r.status_code, r.text)
        assert r.headers["location"] == post_logout + "?state=bye", r.headers["location"]
        login, _, _, _ = authorize(rp())
        page = browser.get(login, allow_redirects=False, timeout=10)
        assert page.status_code == 200 and "password" in page.text, (page.status_code, page.text)
        return {"signed_out": True}
    case("RP-initiated logout ends the session", logout)

    report.print()


if __name__ == "__main__":
    main()
