#!/usr/bin/env python3
"""JOSE interop peer: Python jwcrypto judges what cryptoutil produces, and produces what
cryptoutil must accept. Driven by tests/src/it/jose_interop.rs.

  jose_interop.py verify CASES.json   -> {"results": [{"name", "ok", "error"}]}
  jose_interop.py produce ALGS...     -> [{"name", "alg", "jwk", "jws", "payload_b64"}]
"""
import base64
import json
import sys

from jwcrypto import jwk, jws
from jwcrypto.common import json_encode

PAYLOAD = "interop payload \u2713 {\"n\":1}".encode()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify(path: str) -> None:
    cases = json.load(open(path))
    results = []
    for case in cases:
        try:
            key = jwk.JWK(**case["jwk"])
            token = jws.JWS()
            token.deserialize(case["jws"])
            token.verify(key, alg=case["alg"])
            if token.payload != unb64(case["payload_b64"]):
                raise ValueError("payload differs")
            results.append({"name": case["name"], "ok": True, "error": None})
        except Exception as exc:  # report every failure, do not stop at the first
            results.append({"name": case["name"], "ok": False, "error": repr(exc)})
    print(json.dumps({"results": results}))


def new_key(alg: str) -> jwk.JWK:
    if alg.startswith("HS"):
        return jwk.JWK.generate(kty="oct", size={"HS256": 256, "HS384": 384, "HS512": 512}[alg])
    if alg[:2] in ("RS", "PS"):
        return jwk.JWK.generate(kty="RSA", size={"256": 2048, "384": 3072, "512": 4096}[alg[2:]])
    if alg.startswith("ES"):
        return jwk.JWK.generate(kty="EC", crv={"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}[alg])
    if alg == "EdDSA":
        return jwk.JWK.generate(kty="OKP", crv="Ed25519")
    raise ValueError(alg)


def produce(algs) -> None:
    out = []
    for alg in algs:
        key = new_key(alg)
        exported = key.export(as_dict=True) if alg.startswith("HS") else key.export_public(as_dict=True)
        compact = jws.JWS(PAYLOAD)
        compact.add_signature(key, None, json_encode({"alg": alg, "kid": "peer-" + alg}))
        out.append({"name": alg + " compact", "alg": alg, "jwk": exported,
                    "jws": compact.serialize(compact=True), "payload_b64": b64(PAYLOAD)})
        flat = jws.JWS(PAYLOAD)
        flat.add_signature(key, None, json_encode({"alg": alg}), json_encode({"kid": "peer-" + alg}))
        out.append({"name": alg + " flattened JSON", "alg": alg, "jwk": exported,
                    "jws": flat.serialize(), "payload_b64": b64(PAYLOAD)})
    print(json.dumps(out))


if __name__ == "__main__":
    if sys.argv[1] == "verify":
        verify(sys.argv[2])
    elif sys.argv[1] == "produce":
        produce(sys.argv[2:])
    else:
        sys.exit("usage: jose_interop.py verify CASES.json | produce ALGS...")
