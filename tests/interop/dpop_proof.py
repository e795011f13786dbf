"""DPoP proofs (RFC 9449 §4.2) made with joserfc, for the interop scripts: typ dpop+jwt, the
signer's public JWK in the header, a fresh jti, htm, htu, iat, and the access token's hash
(ath) at a resource server."""

import base64
import hashlib
import time
import uuid

from joserfc import jwt


def ath(access_token):
    """base64url(SHA-256(access_token)), as a proof at a resource server carries it."""
    return base64.urlsafe_b64encode(hashlib.sha256(access_token.encode()).digest()).rstrip(b"=").decode()


def proof(signer, htm, htu, ath=None):
    """A proof by `signer` (a joserfc EC P-256 key) for `htm` `htu`."""
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": signer.as_dict(private=False)}
    claims = {"jti": str(uuid.uuid4()), "htm": htm, "htu": htu, "iat": int(time.time())}
    if ath:
        claims["ath"] = ath
    return jwt.encode(header, claims, signer)
