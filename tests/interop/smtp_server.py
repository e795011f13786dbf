"""An SMTP relay no one here wrote (aiosmtpd), for identity-idp's magic links.

Usage: smtp_server.py MODE DIR USER PASSWORD

MODE is `starttls` (STARTTLS offered and required before anything else, AUTH only after it),
`implicit` (TLS from the first byte) or `plain` (no TLS offered at all: a client that sends
mail to it in the clear is wrong). Makes a CA and a server certificate for localhost and
127.0.0.1 with `cryptography`, writes the CA to DIR/ca.pem, serves on a free port of 127.0.0.1
and prints `ready <port>` on stdout. AUTH PLAIN/LOGIN accepts USER and PASSWORD only. Each
message accepted is written to DIR/mail-<n>.eml, its envelope and session to
DIR/mail-<n>.json (`from`, `to`, `auth`, `tls`). Runs until stdin closes.
"""

import datetime
import ipaddress
import json
import os
import socket
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def certificates(directory):
    """A CA and a localhost server certificate it signed: the server's PEM paths."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smtp test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                         critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    with open(os.path.join(directory, "ca.pem"), "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    cert_path, key_path = os.path.join(directory, "server.pem"), os.path.join(directory, "server.key")
    with open(cert_path, "wb") as f:
        f.write(leaf.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


class Sink:
    def __init__(self, directory):
        self.directory, self.count = directory, 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        ssl_object = server.transport.get_extra_info("ssl_object")
        base = os.path.join(self.directory, f"mail-{self.count}")
        # The envelope first, the message last and whole: a reader waits for the .eml.
        with open(base + ".json", "w") as f:
            json.dump({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                       "auth": session.auth_data.login.decode() if session.authenticated else None,
                       "tls": ssl_object.version() if ssl_object else None}, f)
        with open(base + ".tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(base + ".tmp", base + ".eml")
        return "250 OK"


def main():
    mode, directory, user, password = sys.argv[1:]
    cert, key = certificates(directory)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(cert, key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == user.encode()
              and auth_data.password == password.encode())
        return AuthResult(success=ok, auth_data=auth_data)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    options = {"authenticator": authenticator}
    if mode == "starttls":
        options.update(tls_context=context, require_starttls=True, auth_require_tls=True)
    elif mode == "implicit":
        # The whole connection is TLS: aiosmtpd counts only STARTTLS as encryption.
        options.update(ssl_context=context, auth_require_tls=False)
    elif mode == "plain":
        options.update(auth_require_tls=False)
    else:
        raise SystemExit(f"unknown mode {mode}")
    controller = Controller(Sink(directory), hostname="127.0.0.1", port=port, **options)
    controller.start()
    print(f"ready {port}", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
