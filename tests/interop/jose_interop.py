#!/usr/bin/env python3
"""JOSE interop peer: Python jwcrypto judges what cryptoutil produces, and produces what
cryptoutil must accept. Driven by tests/src/it/jose_interop.rs.

  jose_interop.py verify CASES.json        -> {"results": [{"name", "ok", "error"}]}
  jose_interop.py produce ALGS...          -> [{"name", "alg", "jwk", "jws", "payload_b64"}]
  jose_interop.py jwe-decrypt CASES.json   -> {"results": [...]}  (private JWK, JWE, plaintext)
  jose_interop.py jwe-produce ALG:ENC...   -> [{"name", "alg", "enc", "jwk", "jwe", "plaintext_b64"}]
"""
import base64
import hmac
import json
import os
import struct
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as chmac
from cryptography.hazmat.primitives import padding as sympad
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from jwcrypto import jwe, jwk, jws
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


JWE_ALGS = ["dir", "A128KW", "A256KW", "A128GCMKW", "A256GCMKW", "RSA-OAEP", "RSA-OAEP-256",
            "RSA-OAEP-384", "RSA-OAEP-512", "ECDH-ES", "ECDH-ES+A128KW", "ECDH-ES+A256KW",
            "PBES2-HS256+A128KW", "PBES2-HS512+A256KW"]
JWE_ENCS = ["A128GCM", "A192GCM", "A256GCM", "A128CBC-HS256", "A192CBC-HS384", "A256CBC-HS512"]


# jwcrypto does not implement RSA-OAEP-384/512 (registered by W3C WebCrypto). For those two the
# judge is pyca/cryptography (OpenSSL) driven by the RFC 7516/7518 steps below.
MANUAL_ALGS = {"RSA-OAEP-384": hashes.SHA384, "RSA-OAEP-512": hashes.SHA512}
CBC_HASH = {"A128CBC-HS256": hashes.SHA256, "A192CBC-HS384": hashes.SHA384, "A256CBC-HS512": hashes.SHA512}


def oaep(alg):
    h = MANUAL_ALGS[alg]
    return padding.OAEP(mgf=padding.MGF1(algorithm=h()), algorithm=h(), label=None)


def cbc_tag(enc, mac_key, aad, iv, ct):
    h = chmac.HMAC(mac_key, CBC_HASH[enc]())
    h.update(aad + iv + ct + struct.pack(">Q", len(aad) * 8))
    return h.finalize()[:len(mac_key)]


def content_decrypt(enc, cek, iv, ct, tag, aad):
    if enc.endswith("GCM"):
        return AESGCM(cek).decrypt(iv, ct + tag, aad)
    mac_key, enc_key = cek[:len(cek) // 2], cek[len(cek) // 2:]
    if not hmac.compare_digest(cbc_tag(enc, mac_key, aad, iv, ct), tag):
        raise ValueError("authentication tag mismatch")
    d = Cipher(algorithms.AES(enc_key), modes.CBC(iv)).decryptor()
    u = sympad.PKCS7(128).unpadder()
    return u.update(d.update(ct) + d.finalize()) + u.finalize()


def content_encrypt(enc, cek, pt, aad):
    if enc.endswith("GCM"):
        iv = os.urandom(12)
        out = AESGCM(cek).encrypt(iv, pt, aad)
        return iv, out[:-16], out[-16:]
    mac_key, enc_key = cek[:len(cek) // 2], cek[len(cek) // 2:]
    iv = os.urandom(16)
    p = sympad.PKCS7(128).padder()
    e = Cipher(algorithms.AES(enc_key), modes.CBC(iv)).encryptor()
    ct = e.update(p.update(pt) + p.finalize()) + e.finalize()
    return iv, ct, cbc_tag(enc, mac_key, aad, iv, ct)


def parts_of(token):
    if token.startswith("{"):
        t = json.loads(token)
        aad = t["protected"] + ("." + t["aad"] if "aad" in t else "")
        header = json.loads(unb64(t["protected"]))
        header.update(t.get("unprotected", {}))
        header.update(t.get("header", {}))
        return header, unb64(t.get("encrypted_key", "")), unb64(t["iv"]), unb64(t["ciphertext"]), unb64(t["tag"]), aad
    p = token.split(".")
    return json.loads(unb64(p[0])), unb64(p[1]), unb64(p[2]), unb64(p[3]), unb64(p[4]), p[0]


def manual_decrypt(key, token):
    header, ek, iv, ct, tag, aad = parts_of(token)
    cek = key.get_op_key("unwrapKey").decrypt(ek, oaep(header["alg"]))
    return content_decrypt(header["enc"], cek, iv, ct, tag, aad.encode())


def manual_encrypt(public, alg, enc, pt, compact):
    sizes = {"A128GCM": 16, "A192GCM": 24, "A256GCM": 32, "A128CBC-HS256": 32, "A192CBC-HS384": 48, "A256CBC-HS512": 64}
    cek = os.urandom(sizes[enc])
    ek = public.get_op_key("wrapKey").encrypt(cek, oaep(alg))
    protected = b64(json.dumps({"alg": alg, "enc": enc}).encode())
    iv, ct, tag = content_encrypt(enc, cek, pt, protected.encode())
    if compact:
        return ".".join([protected, b64(ek), b64(iv), b64(ct), b64(tag)])
    return json.dumps({"protected": protected, "encrypted_key": b64(ek), "iv": b64(iv), "ciphertext": b64(ct), "tag": b64(tag)})


def jwe_decrypt(path: str) -> None:
    cases = json.load(open(path))
    results = []
    for case in cases:
        try:
            key = jwk.JWK(**case["jwk"])
            if case["jwk"].get("alg") in MANUAL_ALGS:
                payload = manual_decrypt(key, case["jwe"])
            else:
                token = jwe.JWE(algs=JWE_ALGS + JWE_ENCS)
                token.deserialize(case["jwe"], key=key)
                payload = token.payload
            if payload != unb64(case["plaintext_b64"]):
                raise ValueError("plaintext differs")
            results.append({"name": case["name"], "ok": True, "error": None})
        except Exception as exc:
            results.append({"name": case["name"], "ok": False, "error": repr(exc)})
    print(json.dumps({"results": results}))


def new_jwe_key(alg: str, enc: str) -> jwk.JWK:
    sizes = {"A128GCM": 128, "A192GCM": 192, "A256GCM": 256, "A128CBC-HS256": 256,
             "A192CBC-HS384": 384, "A256CBC-HS512": 512}
    if alg == "dir":
        return jwk.JWK.generate(kty="oct", size=sizes[enc])
    if alg in ("A128KW", "A128GCMKW"):
        return jwk.JWK.generate(kty="oct", size=128)
    if alg in ("A256KW", "A256GCMKW") or alg.startswith("PBES2"):
        return jwk.JWK.generate(kty="oct", size=256)
    if alg.startswith("RSA-OAEP"):
        return jwk.JWK.generate(kty="RSA", size=2048)
    return jwk.JWK.generate(kty="EC", crv="P-256")


def jwe_produce(pairs) -> None:
    out = []
    for pair in pairs:
        alg, enc = pair.split(":")
        key = new_jwe_key(alg, enc)
        recipient = key if alg == "dir" or alg.startswith(("A1", "A2", "PBES2")) else jwk.JWK(**key.export_public(as_dict=True))
        for form in ("compact", "flattened JSON"):
            if alg in MANUAL_ALGS:
                text = manual_encrypt(recipient, alg, enc, PAYLOAD, form == "compact")
            else:
                token = jwe.JWE(PAYLOAD, json_encode({"alg": alg, "enc": enc}), algs=JWE_ALGS + JWE_ENCS)
                token.add_recipient(recipient)
                text = token.serialize(compact=(form == "compact"))
            out.append({"name": "%s %s %s" % (alg, enc, form), "alg": alg, "enc": enc,
                        "jwk": key.export(as_dict=True), "jwe": text, "plaintext_b64": b64(PAYLOAD)})
    print(json.dumps(out))


def import_jwk(private_path, public_path) -> None:
    """A private JWK and its public JWK Set (cryptoutil pki client-key): jwcrypto reads both,
    the set's key is the private key's public half (RFC 7638 thumbprints), and a JWS signed
    with the private key verifies with the set's."""
    with open(private_path) as f:
        private = jwk.JWK.from_json(f.read())
    with open(public_path) as f:
        public_set = jwk.JWKSet.from_json(f.read())
    keys = list(public_set["keys"])
    ok = private.has_private and len(keys) == 1 and not keys[0].has_private
    ok = ok and keys[0].thumbprint() == private.thumbprint()
    token = jws.JWS(b"client-key")
    token.add_signature(private, None, json_encode({"alg": "ES256"}))
    check = jws.JWS()
    check.deserialize(token.serialize(compact=True))
    check.verify(keys[0])
    print(json.dumps({"ok": bool(ok), "kid": private.get("kid")}))


if __name__ == "__main__":
    if sys.argv[1] == "import-jwk":
        import_jwk(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "verify":
        verify(sys.argv[2])
    elif sys.argv[1] == "produce":
        produce(sys.argv[2:])
    elif sys.argv[1] == "jwe-decrypt":
        jwe_decrypt(sys.argv[2])
    elif sys.argv[1] == "jwe-produce":
        jwe_produce(sys.argv[2:])
    else:
        sys.exit("usage: jose_interop.py verify CASES.json | produce ALGS...")
