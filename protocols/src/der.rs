//! The one DER reader of the crate: a bounds-checked tag-length-value split (definite lengths
//! of up to four octets), shared by the RSA key codec and the EST/CMS parser, and the gate in
//! front of yasna ([`well_formed`]): yasna overflows on lengths near `usize::MAX`, so no
//! attacker's bytes reach it before every length is known to fit its parent.

/// (tag, contents, rest), or `None` for truncated or lying input.
pub(crate) fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let (bytes, rest) = rest.split_at_checked(count)?;
        (
            bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b)),
            rest,
        )
    };
    let (contents, rest) = rest.split_at_checked(len)?;
    Some((tag, contents, rest))
}

/// The contents of a `tag` element and what follows it.
pub(crate) fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (t, contents, rest) = tlv(input)?;
    (t == tag).then_some((contents, rest))
}

/// Deepest nesting [`well_formed`] follows.
const MAX_DEPTH: usize = 32;

/// Whether `input` is exactly one element whose lengths, at every depth, fit inside their
/// parent (definite lengths of at most four octets, low tag numbers only, at most 32 levels),
/// and whose universal tags have the one form DER allows: SEQUENCE and SET constructed, every
/// other universal type (strings included, X.690 §10.2) primitive, no end-of-contents.
pub(crate) fn well_formed(input: &[u8]) -> bool {
    matches!(tlv(input), Some((tag, contents, rest)) if rest.is_empty() && element(tag, contents, 0))
}

fn element(tag: u8, contents: &[u8], depth: usize) -> bool {
    if tag & 0x1f == 0x1f || depth > MAX_DEPTH {
        return false;
    }
    let constructed = tag & 0x20 != 0;
    if tag & 0xc0 == 0 {
        let number = tag & 0x1f;
        let sequence_or_set = number == 0x10 || number == 0x11;
        if number == 0 || constructed != sequence_or_set {
            return false;
        }
    }
    if !constructed {
        return true;
    }
    let mut rest = contents;
    while !rest.is_empty() {
        match tlv(rest) {
            Some((t, c, next)) if element(t, c, depth + 1) => rest = next,
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::well_formed;

    #[test]
    fn lengths_that_do_not_fit_their_parent_are_refused_before_any_parser() {
        assert!(well_formed(&[0x30, 0x03, 0x02, 0x01, 0x05]));
        assert!(well_formed(&[0x04, 0x00]));
        // What the fuzzer found: a nine-octet length inside a sequence (yasna overflowed).
        assert!(!well_formed(&[
            0x30, 0x0b, 0x30, 0x89, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfa
        ]));
        assert!(
            !well_formed(&[0x30, 0x04, 0x02, 0x05, 0x01, 0x02]),
            "a child longer than its parent"
        );
        assert!(!well_formed(&[0x30, 0x00, 0x00]), "trailing bytes");
        assert!(!well_formed(&[0x1f, 0x81, 0x01, 0x00]), "high tag numbers");
        // What the fuzzer found next: a constructed OID (0x26) read as a time-stamp policy.
        assert!(
            !well_formed(&[0x30, 0x04, 0x26, 0x02, 0x05, 0x00]),
            "constructed OID"
        );
        assert!(
            !well_formed(&[0x24, 0x03, 0x04, 0x01, 0x00]),
            "constructed OCTET STRING"
        );
        assert!(!well_formed(&[0x10, 0x00]), "primitive SEQUENCE");
        assert!(!well_formed(&[0x30, 0x02, 0x00, 0x00]), "end-of-contents");
        assert!(
            well_formed(&[0x31, 0x03, 0x06, 0x01, 0x2a]),
            "SET of one OID"
        );
        assert!(
            well_formed(&[0xa0, 0x02, 0x80, 0x00]),
            "context tags keep either form"
        );
        let mut deep = vec![0x04, 0x00];
        for _ in 0..40 {
            let mut outer = vec![0x30, u8::try_from(deep.len()).unwrap_or(0)];
            outer.extend(&deep);
            deep = outer;
            if deep.len() > 120 {
                break;
            }
        }
        assert!(!well_formed(&deep), "too deep");
    }
}
