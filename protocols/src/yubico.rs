//! Yubico OTP, validated locally: what a YubiKey's OTP slot types is its public id and one
//! AES-128 block, both in modhex (a hex alphabet every keyboard layout types alike). The block
//! decrypts, under the key shared with the token, to the token's private id, its counters,
//! a timestamp, random bits and a CRC-16 over all of it.
//!
//! What is pure lives here: modhex, the CRC, the block's layout, its encryption. What a
//! factor must remember (the counters of the last OTP accepted, so an OTP is accepted once)
//! is its caller's: [`Token::position`] orders OTPs of one token.
//!
//! The block's layout (little-endian fields):
//!
//! | bytes  | field                                                        |
//! |--------|--------------------------------------------------------------|
//! | 0..6   | private id                                                   |
//! | 6..8   | usage counter (non-volatile, grows at power-up; bit 15 is a flag) |
//! | 8..11  | timestamp (8 Hz, from a random start at power-up)            |
//! | 11     | session counter (grows per OTP within a power-up)           |
//! | 12..14 | random                                                       |
//! | 14..16 | CRC-16 (ISO 13239) of bytes 0..14, complemented              |

use aws_lc_rs::cipher::{
    DecryptingKey, DecryptionContext, EncryptingKey, UnboundCipherKey, AES_128,
};
use zeroize::Zeroizing;

/// The modhex alphabet: `c` is 0, `v` is 15.
pub const MODHEX: &[u8; 16] = b"cbdefghijklnrtuv";
/// Characters of the encrypted block.
pub const BLOCK_CHARS: usize = 32;
/// Longest public id (16 bytes, Yubico's limit for the fixed part).
pub const MAX_PUBLIC_ID_CHARS: usize = 32;
/// What the CRC-16 of a whole block, its CRC included, comes to when the block is intact.
const CRC_RESIDUE: u16 = 0xf0b8;
/// The usage counter's bits (bit 15 says the OTP was triggered by caps lock).
const USAGE_MASK: u16 = 0x7fff;

/// Why a Yubico OTP or key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum YubicoError {
    /// Not a public id and a 32-character block in modhex.
    #[error(
        "not a Yubico OTP: a modhex public id of up to 32 characters and a 32-character block"
    )]
    Format,
    /// A public id that is not 2 to 32 modhex characters, an even number of them.
    #[error("public_id: 2 to 32 modhex characters (cbdefghijklnrtuv), an even number")]
    PublicId,
    /// A private id that is not 6 bytes of hex.
    #[error("private_id: 12 hex digits")]
    PrivateId,
    /// A key that is not 16 bytes of hex.
    #[error("aes_key: 32 hex digits")]
    Key,
    /// The block's CRC does not hold: another key, or a typo.
    #[error("the OTP's checksum does not hold")]
    Crc,
}

/// One OTP as typed: its public id (lowercase modhex) and encrypted block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Otp {
    /// The public id, lowercase modhex (empty for a token configured without one).
    pub public_id: String,
    block: [u8; 16],
}

impl Otp {
    /// Parses what a token typed (upper case, as with caps lock on, is read as lower case).
    pub fn parse(text: &str) -> Result<Self, YubicoError> {
        let text = text.trim();
        let len = text.len();
        if !(BLOCK_CHARS..=BLOCK_CHARS + MAX_PUBLIC_ID_CHARS).contains(&len) || len % 2 != 0 {
            return Err(YubicoError::Format);
        }
        let lower = text.to_ascii_lowercase();
        let (public_id, block_text) = lower
            .split_at_checked(len - BLOCK_CHARS)
            .ok_or(YubicoError::Format)?;
        let block: [u8; 16] = modhex_decode(block_text)
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .ok_or(YubicoError::Format)?;
        if modhex_decode(public_id).is_none() {
            return Err(YubicoError::Format);
        }
        Ok(Self {
            public_id: public_id.to_owned(),
            block,
        })
    }
}

/// What a block holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The private id (secret, like the key: the block proves the token knows it).
    pub private_id: [u8; 6],
    /// The usage counter as sent, with its flag bit.
    pub usage: u16,
    /// The 24-bit timestamp.
    pub timestamp: u32,
    /// The session counter.
    pub session: u8,
    /// Random bits.
    pub random: u16,
}

impl Token {
    /// The usage counter without its flag.
    pub fn usage_counter(&self) -> u16 {
        self.usage & USAGE_MASK
    }

    /// Where this OTP falls in its token's sequence: (usage counter, session counter) as one
    /// number. Of two OTPs of one token the later has the larger position.
    pub fn position(&self) -> u32 {
        (u32::from(self.usage_counter()) << 8) | u32::from(self.session)
    }

    fn pack(&self) -> Zeroizing<[u8; 16]> {
        let mut b = Zeroizing::new([0u8; 16]);
        let ts = self.timestamp.to_le_bytes();
        let fields = [
            self.private_id.as_slice(),
            &self.usage.to_le_bytes(),
            ts.get(..3).unwrap_or_default(),
            &[self.session],
            &self.random.to_le_bytes(),
        ];
        let mut at = 0;
        for field in fields {
            for (dst, src) in b.iter_mut().skip(at).zip(field) {
                *dst = *src;
            }
            at += field.len();
        }
        let crc = !crc16(b.get(..14).unwrap_or_default());
        for (dst, src) in b.iter_mut().skip(14).zip(crc.to_le_bytes()) {
            *dst = src;
        }
        b
    }

    fn unpack(b: &[u8; 16]) -> Result<Self, YubicoError> {
        if crc16(b) != CRC_RESIDUE {
            return Err(YubicoError::Crc);
        }
        let [p0, p1, p2, p3, p4, p5, u0, u1, t0, t1, t2, session, r0, r1, _, _] = *b;
        Ok(Self {
            private_id: [p0, p1, p2, p3, p4, p5],
            usage: u16::from_le_bytes([u0, u1]),
            timestamp: u32::from_le_bytes([t0, t1, t2, 0]),
            session,
            random: u16::from_le_bytes([r0, r1]),
        })
    }
}

/// A token's AES-128 key.
pub struct YubicoKey {
    decrypt: DecryptingKey,
    encrypt: EncryptingKey,
}

impl std::fmt::Debug for YubicoKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("YubicoKey(..)")
    }
}

impl YubicoKey {
    /// The key of 16 bytes.
    pub fn new(key: &[u8]) -> Result<Self, YubicoError> {
        if key.len() != 16 {
            return Err(YubicoError::Key);
        }
        let unbound = || UnboundCipherKey::new(&AES_128, key).map_err(|_| YubicoError::Key);
        Ok(Self {
            decrypt: DecryptingKey::ecb(unbound()?).map_err(|_| YubicoError::Key)?,
            encrypt: EncryptingKey::ecb(unbound()?).map_err(|_| YubicoError::Key)?,
        })
    }

    /// The key from 32 hex digits.
    pub fn from_hex(hex: &str) -> Result<Self, YubicoError> {
        let bytes = Zeroizing::new(hex_decode(hex).ok_or(YubicoError::Key)?);
        Self::new(&bytes)
    }

    /// What `otp`'s block holds, its CRC checked. The caller compares the private id (in
    /// constant time) and the position.
    pub fn open(&self, otp: &Otp) -> Result<Token, YubicoError> {
        let mut block = Zeroizing::new(otp.block);
        self.decrypt
            .decrypt(block.as_mut_slice(), DecryptionContext::None)
            .map_err(|_| YubicoError::Crc)?;
        Token::unpack(&block)
    }

    /// The OTP a token with public id `public_id` (modhex) types for `token`.
    pub fn seal(&self, public_id: &str, token: &Token) -> Result<String, YubicoError> {
        let mut block = token.pack();
        self.encrypt
            .encrypt(block.as_mut_slice())
            .map_err(|_| YubicoError::Key)?;
        Ok(format!("{public_id}{}", modhex_encode(block.as_slice())))
    }
}

/// `bytes` in modhex.
pub fn modhex_encode(bytes: &[u8]) -> String {
    let digit = |n: u8| char::from(MODHEX.get(usize::from(n & 0xf)).copied().unwrap_or(b'c'));
    bytes
        .iter()
        .flat_map(|b| [digit(b >> 4), digit(*b)])
        .collect()
}

/// The bytes of lowercase modhex `text` (an even number of characters).
pub fn modhex_decode(text: &str) -> Option<Vec<u8>> {
    let nibble = |c: u8| {
        MODHEX
            .iter()
            .position(|m| *m == c)
            .and_then(|n| u8::try_from(n).ok())
    };
    decode_pairs(text, nibble)
}

/// The bytes of hex `text` (either case, an even number of digits).
pub fn hex_decode(text: &str) -> Option<Vec<u8>> {
    let nibble = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|n| u8::try_from(n).ok())
    };
    decode_pairs(text, nibble)
}

fn decode_pairs(text: &str, nibble: impl Fn(u8) -> Option<u8>) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.len() % 2 != 0 {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| match *pair {
            [hi, lo] => Some((nibble(hi)? << 4) | nibble(lo)?),
            _ => None,
        })
        .collect()
}

/// A public id from configuration or an operator: lowercase modhex, 2 to 32 characters.
pub fn public_id(text: &str) -> Result<String, YubicoError> {
    let lower = text.trim().to_ascii_lowercase();
    if (2..=MAX_PUBLIC_ID_CHARS).contains(&lower.len()) && modhex_decode(&lower).is_some() {
        Ok(lower)
    } else {
        Err(YubicoError::PublicId)
    }
}

/// A private id from 12 hex digits.
pub fn private_id(text: &str) -> Result<[u8; 6], YubicoError> {
    hex_decode(text.trim())
        .and_then(|b| <[u8; 6]>::try_from(b).ok())
        .ok_or(YubicoError::PrivateId)
}

/// The CRC-16 Yubico tokens use (ISO 13239: reflected polynomial 0x8408, initial 0xffff, no
/// final complement here).
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xffff;
    for byte in data {
        crc ^= u16::from(*byte);
        for _ in 0..8 {
            let low = crc & 1;
            crc >>= 1;
            if low != 0 {
                crc ^= 0x8408;
            }
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Yubico's published test vectors (the OTP specification's, and yubico-c's self test):
    /// key, private id, usage, timestamp, session, random, OTP block.
    /// Key, private id, usage, timestamp, session, random, OTP block.
    type Vector = (&'static str, [u8; 6], u16, u32, u8, u16, &'static str);

    const VECTORS: [Vector; 6] = [
        (
            "000102030405060708090a0b0c0d0e0f",
            [1, 2, 3, 4, 5, 6],
            1,
            0x01_0001,
            1,
            0,
            "dvgtiblfkbgturecfllberrvkinnctnn",
        ),
        (
            "000102030405060708090a0b0c0d0e0f",
            [1, 2, 3, 4, 5, 6],
            1,
            0x01_0001,
            2,
            0,
            "rnibcnfhdninbrdebccrndfhjgnhftee",
        ),
        (
            "000102030405060708090a0b0c0d0e0f",
            [1, 2, 3, 4, 5, 6],
            0xfff,
            0x01_0001,
            1,
            0,
            "iikkijbdknrrdhfdrjltvgrbkkjblcbh",
        ),
        (
            "88888888888888888888888888888888",
            [0x88; 6],
            0x8888,
            0x88_8888,
            0x88,
            0x8888,
            "dcihgvrhjeucvrinhdfddbjhfjftjdei",
        ),
        (
            "00000000000000000000000000000000",
            [0; 6],
            0,
            0,
            0,
            0,
            "kkkncjnvcnenkjvjgncjihljiibgbhbh",
        ),
        (
            "c4422890653076cde73d449b191b416a",
            [0x33, 0xc6, 0x9e, 0x7f, 0x24, 0x9e],
            1,
            0x24_13a7,
            0,
            0xc63c,
            "iucvrkjiegbhidrcicvlgrcgkgurhjnj",
        ),
    ];

    #[test]
    fn yubicos_test_vectors_open_and_seal() {
        for (key, private_id, usage, timestamp, session, random, block) in VECTORS {
            let key = YubicoKey::from_hex(key).unwrap();
            let token = Token {
                private_id,
                usage,
                timestamp,
                session,
                random,
            };
            let typed = format!("cccjgjgkhcbb{block}");
            let otp = Otp::parse(&typed).unwrap();
            assert_eq!(otp.public_id, "cccjgjgkhcbb");
            assert_eq!(key.open(&otp).unwrap(), token, "{block}");
            assert_eq!(key.seal("cccjgjgkhcbb", &token).unwrap(), typed);
            // Caps lock: the same OTP in upper case.
            let upper = Otp::parse(&typed.to_ascii_uppercase()).unwrap();
            assert_eq!(key.open(&upper).unwrap(), token);
        }
        // The flag bit is not part of the counter.
        let flagged = Token {
            private_id: [0x88; 6],
            usage: 0x8888,
            timestamp: 0,
            session: 0x88,
            random: 0,
        };
        assert_eq!(flagged.usage_counter(), 0x0888);
        assert_eq!(flagged.position(), 0x0008_8888);
    }

    proptest::proptest! {
        /// Whatever is typed, parsing and opening answer without panicking, and what seals
        /// opens to itself.
        #[test]
        fn anything_typed_is_parsed_or_refused(text in "\\PC{0,80}", modhex in "[cbdefghijklnrtuvCV]{30,66}") {
            let key = YubicoKey::from_hex("000102030405060708090a0b0c0d0e0f").unwrap();
            for typed in [text, modhex] {
                if let Ok(otp) = Otp::parse(&typed) {
                    let _ = key.open(&otp);
                }
            }
        }

        #[test]
        fn sealed_tokens_open_to_themselves(
            private_id: [u8; 6], usage: u16, timestamp in 0u32..0x100_0000, session: u8, random: u16,
        ) {
            let key = YubicoKey::from_hex("c4422890653076cde73d449b191b416a").unwrap();
            let token = Token { private_id, usage, timestamp, session, random };
            let typed = key.seal("vvcccjgjgkhc", &token).unwrap();
            proptest::prop_assert_eq!(key.open(&Otp::parse(&typed).unwrap()).unwrap(), token);
        }
    }

    #[test]
    fn yubico_c_crc_vectors() {
        assert_eq!(crc16(&[0xfe]), 4470);
        assert_eq!(crc16(&[0x55, 0xaa, 0, 0xff]), 52149);
        assert_eq!(
            crc16(&[1, 2, 3, 4, 5, 6, 0x30, 0x75, 0x00, 0x09, 0x3d, 0xfa, 0x60, 0xea]),
            35339
        );
    }

    #[test]
    fn modhex_is_hex_in_another_alphabet() {
        assert_eq!(
            modhex_decode("dvgtiblfkbgturecfllberrvkinnctnn").unwrap(),
            hex_decode("2f5d71a4915dec304aa13ccf97bb0dbb").unwrap()
        );
        assert_eq!(modhex_encode(&[0x01, 0x23, 0xef]), "cbdeuv");
        assert_eq!(
            modhex_encode(&[0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]),
            "cbdefghijklnrtuv"
        );
        assert!(modhex_decode("abc").is_none());
        assert!(modhex_decode("ca").is_none());
    }

    #[test]
    fn what_is_not_an_otp_of_this_key_is_refused() {
        let key = YubicoKey::from_hex("000102030405060708090a0b0c0d0e0f").unwrap();
        for bad in [
            "",
            "dvgtiblfkbgturecfllberrvkinnctn",
            "cdvgtiblfkbgturecfllberrvkinnctnn",
            "123456",
            "dvgtiblfkbgturecfllberrvkinnctna",
            &"c".repeat(BLOCK_CHARS + MAX_PUBLIC_ID_CHARS + 2),
        ] {
            assert_eq!(Otp::parse(bad), Err(YubicoError::Format), "{bad}");
        }
        // Another key's block: the CRC does not hold.
        let other = YubicoKey::from_hex("88888888888888888888888888888888").unwrap();
        let otp = Otp::parse("dvgtiblfkbgturecfllberrvkinnctnn").unwrap();
        assert_eq!(otp.public_id, "");
        assert_eq!(other.open(&otp), Err(YubicoError::Crc));
        // One character changed: the CRC does not hold.
        let typo = Otp::parse("dvgtiblfkbgturecfllberrvkinnctnv").unwrap();
        assert_eq!(key.open(&typo), Err(YubicoError::Crc));
        assert_eq!(YubicoKey::from_hex("0001").unwrap_err(), YubicoError::Key);
        assert_eq!(YubicoKey::from_hex("zz").unwrap_err(), YubicoError::Key);
        assert_eq!(public_id("cc").unwrap(), "cc");
        assert_eq!(public_id("VVCCCJGJGKHCBB").unwrap(), "vvcccjgjgkhcbb");
        for bad in ["", "c", "ccc", "abcd", &"c".repeat(34)] {
            assert_eq!(public_id(bad), Err(YubicoError::PublicId), "{bad}");
        }
        assert_eq!(private_id("010203040506").unwrap(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(private_id("0102030405"), Err(YubicoError::PrivateId));
    }
}
