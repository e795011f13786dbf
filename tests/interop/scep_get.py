"""A SCEP GetCert / GetCRL / CertPoll request (RFC 8894 §3.3.3, §3.3.4, §3.3.2), for the CA's
SCEP server.

No SCEP client installable here sends GetCert or GetCRL (nor a CertPoll from a stranger), so
this one builds them with independent libraries: the CMS structures with pyasn1-alt-modules
(RFC 5652), the crypto with `cryptography` (OpenSSL). It signs with a fresh self-signed RSA
certificate, encrypts an IssuerAndSerialNumber (for CertPoll, an IssuerAndSubject) to the RA
certificate (AES-128-CBC, RSA PKCS#1 v1.5 key transport), POSTs it, and writes the answer (a
CertRep) with the client's certificate and key, so that `openssl cms` (not this script)
verifies and opens it.

usage: scep_get.py URL ANCHOR RA.der CA.der SERIAL_HEX|TRANSACTION_ID GetCert|GetCRL|CertPoll OUT
(CertPoll: the transactionID to poll, from a key that did not start it)
"""

import datetime
import os
import sys

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.x509.oid import NameOID
from pyasn1.codec.der import decoder, encoder
from pyasn1.type import char, tag, univ, useful
from pyasn1_alt_modules import rfc3565, rfc5280, rfc5652

SCEP = "2.16.840.1.113733.1.9."
MESSAGE_TYPE, SENDER_NONCE, TRANS_ID = SCEP + "2", SCEP + "5", SCEP + "7"
RSA_ENCRYPTION = univ.ObjectIdentifier("1.2.840.113549.1.1.1")
SHA256 = univ.ObjectIdentifier("2.16.840.1.101.3.4.2.1")


def algorithm(oid, params=None):
    alg = rfc5280.AlgorithmIdentifier()
    alg["algorithm"] = oid
    if params is not None:
        alg["parameters"] = params
    return alg


def issuer_and_serial(cert):
    ias = rfc5652.IssuerAndSerialNumber()
    ias["issuer"] = decoder.decode(cert.issuer.public_bytes(), asn1Spec=rfc5280.Name())[0]
    ias["serialNumber"] = cert.serial_number
    return ias


def der_length(n):
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def attribute(oid, value):
    attr = rfc5652.Attribute()
    attr["attrType"] = univ.ObjectIdentifier(oid)
    attr["attrValues"].append(value)
    return attr


def main():
    url, anchor, ra_path, ca_path, serial, op, out = sys.argv[1:8]
    ra = x509.load_der_x509_certificate(open(ra_path, "rb").read())
    ca = x509.load_der_x509_certificate(open(ca_path, "rb").read())

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "scep getter")])
    now = datetime.datetime.now(datetime.timezone.utc)
    me = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )

    # What is asked: IssuerAndSerialNumber, the issuer being the CA's subject; for a CertPoll,
    # IssuerAndSubject (RFC 8894 §3.3.2), the transactionID is the one given.
    issuer = decoder.decode(ca.subject.public_bytes(), asn1Spec=rfc5280.Name())[0]
    if op == "CertPoll":
        transaction_id = serial
        inner = encoder.encode(issuer) + name.public_bytes()
        plain = bytes([0x30]) + der_length(len(inner)) + inner
    else:
        transaction_id = os.urandom(8).hex()
        wanted = rfc5652.IssuerAndSerialNumber()
        wanted["issuer"] = issuer
        wanted["serialNumber"] = int(serial, 16)
        plain = encoder.encode(wanted)

    # pkcsPKIEnvelope: EnvelopedData to the RA, AES-128-CBC.
    cek, iv = os.urandom(16), os.urandom(16)
    padder = sym_padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    enc = Cipher(algorithms.AES(cek), modes.CBC(iv)).encryptor()
    ciphertext = enc.update(padded) + enc.finalize()
    ktri = rfc5652.KeyTransRecipientInfo()
    ktri["version"] = 0
    ktri["rid"]["issuerAndSerialNumber"] = issuer_and_serial(ra)
    ktri["keyEncryptionAlgorithm"] = algorithm(RSA_ENCRYPTION, univ.Null(""))
    ktri["encryptedKey"] = ra.public_key().encrypt(cek, padding.PKCS1v15())
    recipient = rfc5652.RecipientInfo()
    recipient["ktri"] = ktri
    env = rfc5652.EnvelopedData()
    env["version"] = 0
    env["recipientInfos"].append(recipient)
    eci = env["encryptedContentInfo"]
    eci["contentType"] = rfc5652.id_data
    eci["contentEncryptionAlgorithm"] = algorithm(rfc3565.id_aes128_CBC, univ.OctetString(iv))
    eci["encryptedContent"] = eci["encryptedContent"].clone(ciphertext)
    envelope = rfc5652.ContentInfo()
    envelope["contentType"] = rfc5652.id_envelopedData
    envelope["content"] = encoder.encode(env)
    content = encoder.encode(envelope)

    # pkiMessage: SignedData by the self-signed certificate, with the SCEP attributes.
    digest = hashes.Hash(hashes.SHA256())
    digest.update(content)
    attrs = rfc5652.SignedAttributes().subtype(
        implicitTag=tag.Tag(tag.tagClassContext, tag.tagFormatConstructed, 0)
    )
    attrs.append(attribute("1.2.840.113549.1.9.3", rfc5652.id_data))
    attrs.append(attribute("1.2.840.113549.1.9.5", useful.UTCTime(now.strftime("%y%m%d%H%M%SZ"))))
    attrs.append(attribute("1.2.840.113549.1.9.4", univ.OctetString(digest.finalize())))
    number = {"CertPoll": "20", "GetCert": "21", "GetCRL": "22"}[op]
    attrs.append(attribute(MESSAGE_TYPE, char.PrintableString(number)))
    attrs.append(attribute(TRANS_ID, char.PrintableString(transaction_id)))
    attrs.append(attribute(SENDER_NONCE, univ.OctetString(os.urandom(16))))
    to_sign = bytearray(encoder.encode(attrs))
    to_sign[0] = 0x31  # signed as a SET OF
    signature = key.sign(bytes(to_sign), padding.PKCS1v15(), hashes.SHA256())

    signer = rfc5652.SignerInfo()
    signer["version"] = 1
    signer["sid"]["issuerAndSerialNumber"] = issuer_and_serial(me)
    signer["digestAlgorithm"] = algorithm(SHA256, univ.Null(""))
    signer["signedAttrs"] = attrs
    signer["signatureAlgorithm"] = algorithm(RSA_ENCRYPTION, univ.Null(""))
    signer["signature"] = signature
    sd = rfc5652.SignedData()
    sd["version"] = 1
    sd["digestAlgorithms"].append(algorithm(SHA256, univ.Null("")))
    sd["encapContentInfo"]["eContentType"] = rfc5652.id_data
    sd["encapContentInfo"]["eContent"] = content
    cert_choice = rfc5652.CertificateChoices()
    cert_choice["certificate"] = decoder.decode(
        me.public_bytes(serialization.Encoding.DER), asn1Spec=rfc5280.Certificate()
    )[0]
    sd["certificates"].append(cert_choice)
    sd["signerInfos"].append(signer)
    message = rfc5652.ContentInfo()
    message["contentType"] = rfc5652.id_signedData
    message["content"] = encoder.encode(sd)

    answer = requests.post(
        url + "?operation=PKIOperation",
        data=encoder.encode(message),
        headers={"Content-Type": "application/x-pki-message"},
        verify=anchor,
        timeout=30,
    )
    if answer.status_code != 200:
        print(f"HTTP {answer.status_code}: {answer.text}", file=sys.stderr)
        sys.exit(1)
    open(out + ".der", "wb").write(answer.content)
    open(out + "-me.pem", "wb").write(me.public_bytes(serialization.Encoding.PEM))
    open(out + "-me.key", "wb").write(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


if __name__ == "__main__":
    main()
