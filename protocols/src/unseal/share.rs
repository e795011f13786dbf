//! One unseal share and its one-line text form.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use zeroize::Zeroizing;

use super::{CHECK_LEN, KEY_LEN, SET_ID_LEN};

const PREFIX: &str = "cryptoutil-unseal-v1";
/// Longest line we read: prefix, set id, two small numbers, two base64url fields and dots.
const MAX_TEXT_LEN: usize = 160;

/// Why a share or a set of shares is unusable. Messages name shares by index, never by value.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    /// The text is not a share of this format.
    #[error("malformed unseal share: {reason}")]
    Malformed {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Threshold and total are out of range.
    #[error("cannot split into {total} shares with threshold {threshold}: need 1 <= threshold <= total <= 255")]
    BadThreshold {
        /// Requested threshold.
        threshold: u8,
        /// Requested number of shares.
        total: u8,
    },
    /// Fewer shares than the threshold.
    #[error("not enough unseal shares: {have} of the {need} required were given")]
    NotEnough {
        /// Shares given.
        have: usize,
        /// The threshold.
        need: usize,
    },
    /// Two shares carry the same index.
    #[error("unseal share {index} was given twice")]
    DuplicateIndex {
        /// The repeated index.
        index: u8,
    },
    /// A share belongs to another split.
    #[error("unseal share {index} belongs to a different share set")]
    MixedSets {
        /// The share's index.
        index: u8,
    },
    /// A share of the same set disagrees on threshold or check value.
    #[error("unseal share {index} disagrees with the others on threshold or check value")]
    Inconsistent {
        /// The share's index.
        index: u8,
    },
    /// The shares rebuild a key that fails the set's check value.
    #[error("the unseal shares do not rebuild the key of their set: a share is wrong{}", suspects_text(.suspects))]
    WrongShare {
        /// Indexes of the shares that agree with no other subset (empty if undecidable).
        suspects: Vec<u8>,
    },
    /// The random generator failed.
    #[error("random generator failure")]
    Random,
}

fn suspects_text(suspects: &[u8]) -> String {
    if suspects.is_empty() {
        String::from(" (give one more share to find out which)")
    } else {
        let list: Vec<String> = suspects.iter().map(u8::to_string).collect();
        format!(" (suspect share index {})", list.join(", "))
    }
}

/// One share: which set, the threshold, its x coordinate (index) and its 32 y bytes.
#[derive(Clone)]
pub struct UnsealShare {
    set_id: [u8; SET_ID_LEN],
    threshold: u8,
    index: u8,
    value: Zeroizing<[u8; KEY_LEN]>,
    check: [u8; CHECK_LEN],
}

impl UnsealShare {
    pub(super) fn new(
        set_id: [u8; SET_ID_LEN],
        threshold: u8,
        index: u8,
        value: Zeroizing<[u8; KEY_LEN]>,
        check: [u8; CHECK_LEN],
    ) -> Self {
        Self {
            set_id,
            threshold,
            index,
            value,
            check,
        }
    }

    /// Parses the one-line text form; surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Self, ShareError> {
        let malformed = |reason| ShareError::Malformed { reason };
        let text = text.trim();
        if text.len() > MAX_TEXT_LEN {
            return Err(malformed("too long"));
        }
        let mut parts = text.split('.');
        if parts.next() != Some(PREFIX) {
            return Err(malformed("does not start with cryptoutil-unseal-v1"));
        }
        let set_id_hex = parts.next().ok_or(malformed("missing set id"))?;
        let set_id = parse_hex8(set_id_hex).ok_or(malformed("set id is not 16 hex digits"))?;
        let threshold = parse_small(parts.next()).ok_or(malformed("threshold is not 1..=255"))?;
        let index = parse_small(parts.next()).ok_or(malformed("index is not 1..=255"))?;
        let value = decode_fixed::<KEY_LEN>(parts.next()).ok_or(malformed("share value"))?;
        let check = decode_fixed::<CHECK_LEN>(parts.next()).ok_or(malformed("check value"))?;
        if parts.next().is_some() {
            return Err(malformed("trailing fields"));
        }
        Ok(Self {
            set_id,
            threshold,
            index,
            value: Zeroizing::new(value),
            check,
        })
    }

    /// The one-line text form, zeroized when dropped.
    pub fn encode(&self) -> Zeroizing<String> {
        let set_id: String = self.set_id.iter().map(|b| format!("{b:02x}")).collect();
        Zeroizing::new(format!(
            "{PREFIX}.{set_id}.{}.{}.{}.{}",
            self.threshold,
            self.index,
            Zeroizing::new(URL_SAFE_NO_PAD.encode(self.value.as_ref())).as_str(),
            URL_SAFE_NO_PAD.encode(self.check),
        ))
    }

    /// The set this share belongs to.
    pub fn set_id(&self) -> [u8; SET_ID_LEN] {
        self.set_id
    }

    /// How many shares of the set rebuild the key.
    pub fn threshold(&self) -> u8 {
        self.threshold
    }

    /// This share's x coordinate, 1..=255.
    pub fn index(&self) -> u8 {
        self.index
    }

    /// The set's key check value.
    pub fn check(&self) -> &[u8; CHECK_LEN] {
        &self.check
    }

    pub(super) fn value(&self) -> &[u8; KEY_LEN] {
        &self.value
    }
}

impl std::fmt::Debug for UnsealShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnsealShare")
            .field("threshold", &self.threshold)
            .field("index", &self.index)
            .field("value", &"<redacted>")
            .finish()
    }
}

fn parse_small(field: Option<&str>) -> Option<u8> {
    let field = field?;
    if field.is_empty() || field.len() > 3 || !field.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    field.parse::<u8>().ok().filter(|n| *n > 0)
}

fn parse_hex8(hex: &str) -> Option<[u8; SET_ID_LEN]> {
    if hex.len() != SET_ID_LEN * 2 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; SET_ID_LEN];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn decode_fixed<const N: usize>(field: Option<&str>) -> Option<[u8; N]> {
    let bytes = Zeroizing::new(URL_SAFE_NO_PAD.decode(field?).ok()?);
    bytes.as_slice().try_into().ok()
}
