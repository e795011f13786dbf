"""Headless Chromium (Debian's chromium and chromedriver, through Selenium) for the browser
tests. The suite's certificates are in no system store: a test trusts its servers by the
SHA-256 of their public keys (--ignore-certificate-errors-spki-list) or gives Chromium an NSS
database through HOME (the Compose test). Console messages are kept for the tests to read."""

import base64
import hashlib
import os
import shutil
import ssl
import tempfile
from urllib.parse import urlparse

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def _spki(cert):
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def spki_hash(url):
    """base64(SHA-256(SubjectPublicKeyInfo)) of the certificate the server at `url` presents."""
    parsed = urlparse(url)
    pem = ssl.get_server_certificate((parsed.hostname, parsed.port or 443))
    return _spki(x509.load_pem_x509_certificate(pem.encode()))


def spki_hash_of_pem(path):
    """The same for the certificate in the PEM file at `path`."""
    with open(path, "rb") as f:
        return _spki(x509.load_pem_x509_certificate(f.read()))


def browser(trusted=(), args=(), home=None):
    """A headless Chromium trusting the servers whose SPKI hashes are `trusted`, with extra
    command-line `args`, and HOME=`home` when given (its NSS database)."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        raise SystemExit("chromium and chromedriver are required (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             f"--user-data-dir={tempfile.mkdtemp()}", *args]
    if trusted:
        flags.append(f"--ignore-certificate-errors-spki-list={','.join(sorted(set(trusted)))}")
    for flag in flags:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    env = dict(os.environ, HOME=home) if home else None
    return webdriver.Chrome(service=Service(executable_path=driver, env=env), options=options)
