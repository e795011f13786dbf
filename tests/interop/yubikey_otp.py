"""A YubiKey's Yubico OTP slot, simulated by yubiotp (django-otp-yubikey's library, written
by no one here): prints the OTPs a token programmed with KEY, PRIVATE_ID and PUBLIC_ID types
when its button is touched COUNT times, starting at usage counter USAGE and session counter
SESSION, one per line.

usage: yubikey_otp.py KEY_HEX PRIVATE_ID_HEX PUBLIC_ID USAGE SESSION COUNT
"""
import sys
from binascii import unhexlify

from yubiotp.otp import YubiKey, decode_otp, encode_otp


def main():
    key_hex, private_hex, public_id, usage, session, count = sys.argv[1:]
    key, uid = unhexlify(key_hex), unhexlify(private_hex)
    token = YubiKey(uid=uid, session=int(usage), counter=int(session))
    for _ in range(int(count)):
        otp = encode_otp(token.generate(), key, public_id.encode())
        # What was typed opens again under yubiotp's own parser.
        public, opened = decode_otp(otp, key)
        assert public == public_id.encode() and opened.uid == uid, otp
        print(otp.decode())


if __name__ == "__main__":
    main()
