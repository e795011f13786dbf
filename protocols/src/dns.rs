//! The DNS messages ACME's dns-01 validation needs (RFC 1035, RFC 8555 §8.4), pure: a
//! recursive query for the TXT records of one name, and the TXT strings of its answer. The
//! caller sends and receives (UDP), chooses the query id and checks where the answer came
//! from.

use base64::Engine as _;

/// The TXT record type.
const TXT: u16 = 16;
/// The IN class.
const IN: u16 = 1;
/// Largest answer read (a UDP answer without EDNS is at most 512 bytes; some resolvers send
/// more).
pub const MAX_ANSWER: usize = 4096;

/// Why an answer is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The name cannot be asked (empty label, label over 63 bytes, name over 253).
    #[error("{0:?} is not a DNS name")]
    BadName(String),
    /// The answer is not a DNS answer to the query.
    #[error("the resolver's answer is malformed: {0}")]
    Malformed(&'static str),
    /// The answer was cut (TC): too many TXT records for a UDP answer.
    #[error("the resolver's answer was truncated")]
    Truncated,
    /// The resolver failed (its RCODE, other than NXDOMAIN).
    #[error("the resolver answered RCODE {0}")]
    Failed(u8),
}

/// A query (id `id`, recursion desired) for the TXT records of `name`.
pub fn txt_query(id: u16, name: &str) -> Result<Vec<u8>, DnsError> {
    let name = name.trim_end_matches('.');
    let bad = || DnsError::BadName(name.to_owned());
    if name.is_empty() || name.len() > 253 {
        return Err(bad());
    }
    let mut out = Vec::with_capacity(18 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00]); // RD
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QDCOUNT 1
    for label in name.split('.') {
        let len = u8::try_from(label.len()).map_err(|_| bad())?;
        if len == 0 || len > 63 || !label.is_ascii() {
            return Err(bad());
        }
        out.push(len);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&TXT.to_be_bytes());
    out.extend_from_slice(&IN.to_be_bytes());
    Ok(out)
}

/// A cursor over a message.
struct Reader<'a> {
    message: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DnsError> {
        let end = self
            .at
            .checked_add(n)
            .ok_or(DnsError::Malformed("length"))?;
        let out = self
            .message
            .get(self.at..end)
            .ok_or(DnsError::Malformed("cut short"))?;
        self.at = end;
        Ok(out)
    }

    fn u16(&mut self) -> Result<u16, DnsError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([
            *b.first().unwrap_or(&0),
            *b.get(1).unwrap_or(&0),
        ]))
    }

    /// A (possibly compressed) name, lowercased, without its final dot.
    fn name(&mut self) -> Result<String, DnsError> {
        let mut labels: Vec<String> = Vec::new();
        let mut at = self.at;
        let mut jumped = false;
        // Each pointer must point backwards: no loops, at most as many hops as bytes.
        let mut limit = at;
        loop {
            let len = *self
                .message
                .get(at)
                .ok_or(DnsError::Malformed("name cut short"))?;
            match len {
                0 => {
                    if !jumped {
                        self.at = at + 1;
                    }
                    break;
                }
                l if l & 0xc0 == 0xc0 => {
                    let low = *self
                        .message
                        .get(at + 1)
                        .ok_or(DnsError::Malformed("pointer cut short"))?;
                    let target = (usize::from(l & 0x3f) << 8) | usize::from(low);
                    if target >= limit {
                        return Err(DnsError::Malformed(
                            "a name pointer that does not point back",
                        ));
                    }
                    if !jumped {
                        self.at = at + 2;
                    }
                    jumped = true;
                    limit = target;
                    at = target;
                }
                l if l & 0xc0 == 0 => {
                    let label = self
                        .message
                        .get(at + 1..at + 1 + usize::from(l))
                        .ok_or(DnsError::Malformed("label cut short"))?;
                    labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
                    if labels.iter().map(|l| l.len() + 1).sum::<usize>() > 255 {
                        return Err(DnsError::Malformed("name too long"));
                    }
                    at += 1 + usize::from(l);
                }
                _ => return Err(DnsError::Malformed("a label type not defined")),
            }
        }
        Ok(labels.join("."))
    }
}

/// The TXT strings of `name` in `answer` to query `id` (each record's character-strings
/// joined, as RFC 8555 §8.4 reads them); NXDOMAIN and an empty answer are no strings. CNAMEs
/// are followed within the answer.
pub fn txt_answer(answer: &[u8], id: u16, name: &str) -> Result<Vec<String>, DnsError> {
    if answer.len() > MAX_ANSWER {
        return Err(DnsError::Malformed("too large"));
    }
    let mut r = Reader {
        message: answer,
        at: 0,
    };
    if r.u16()? != id {
        return Err(DnsError::Malformed("not the answer to this query (id)"));
    }
    let flags = r.u16()?;
    if flags & 0x8000 == 0 {
        return Err(DnsError::Malformed("a query, not an answer"));
    }
    if flags & 0x0200 != 0 {
        return Err(DnsError::Truncated);
    }
    let rcode = (flags & 0x000f) as u8;
    match rcode {
        0 => {}
        3 => return Ok(Vec::new()),
        other => return Err(DnsError::Failed(other)),
    }
    let questions = r.u16()?;
    let answers = r.u16()?;
    r.take(4)?; // NSCOUNT, ARCOUNT: not read
    let wanted = name.trim_end_matches('.').to_ascii_lowercase();
    for _ in 0..questions {
        let asked = r.name()?;
        let (qtype, _class) = (r.u16()?, r.u16()?);
        if asked != wanted || qtype != TXT {
            return Err(DnsError::Malformed("not the answer to this question"));
        }
    }
    let mut owner = wanted;
    let mut out = Vec::new();
    for _ in 0..answers {
        let record_name = r.name()?;
        let (rtype, class) = (r.u16()?, r.u16()?);
        r.take(4)?; // TTL
        let len = usize::from(r.u16()?);
        let start = r.at;
        let data = r.take(len)?;
        if class != IN || record_name != owner {
            continue;
        }
        match rtype {
            5 => {
                // CNAME: the records that follow are the target's.
                let mut inner = Reader {
                    message: answer,
                    at: start,
                };
                owner = inner.name()?;
            }
            TXT => {
                let mut text = Vec::new();
                let mut rest = data;
                while let Some((&n, tail)) = rest.split_first() {
                    let part = tail
                        .get(..usize::from(n))
                        .ok_or(DnsError::Malformed("TXT string cut short"))?;
                    text.extend_from_slice(part);
                    rest = tail.get(usize::from(n)..).unwrap_or_default();
                }
                out.push(String::from_utf8_lossy(&text).into_owned());
            }
            _ => {}
        }
    }
    Ok(out)
}

/// What the TXT record of a dns-01 challenge holds: the base64url SHA-256 of the key
/// authorization (RFC 8555 §8.4).
pub fn dns01_digest(key_authorization: &str) -> String {
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key_authorization.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer to query `id` for `_acme-challenge.a.example.test` with `flags` and
    /// `records` (owner name as written, type, data). A real resolver (dnsmasq) answers in
    /// `tests/src/it/ca_acme.rs`.
    fn answer(id: u16, flags: u16, records: &[(&[u8], u16, &[u8])]) -> Vec<u8> {
        let mut out = id.to_be_bytes().to_vec();
        out.extend_from_slice(&flags.to_be_bytes());
        out.extend_from_slice(&[0, 1]);
        out.extend_from_slice(&(records.len() as u16).to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        let q = txt_query(id, "_acme-challenge.a.example.test").unwrap();
        out.extend_from_slice(&q[12..]);
        for (name, rtype, data) in records {
            out.extend_from_slice(name);
            out.extend_from_slice(&rtype.to_be_bytes());
            out.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
            out.extend_from_slice(&(data.len() as u16).to_be_bytes());
            out.extend_from_slice(data);
        }
        out
    }

    /// What dnsmasq 2.90 (Debian) answered to a query (id 0x1234) for
    /// `_acme-challenge.x.test` TXT, run with `--txt-record=_acme-challenge.x.test,hello`.
    const DNSMASQ: &str = "1234858000010001000000000f5f61636d652d6368616c6c656e6765017804746573\
                           740000100001c00c001000010000000000060568656c6c6f";

    #[test]
    fn dnsmasq_s_answer_is_read() {
        let bytes: Vec<u8> = (0..DNSMASQ.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&DNSMASQ[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(
            txt_answer(&bytes, 0x1234, "_acme-challenge.x.test").unwrap(),
            vec!["hello"]
        );
        // Our query is the question dnsmasq echoed.
        let q = txt_query(0x1234, "_acme-challenge.x.test").unwrap();
        assert_eq!(&bytes[12..12 + q.len() - 12], &q[12..]);
    }

    #[test]
    fn a_query_asks_for_txt_records_recursively() {
        let q = txt_query(0x1234, "_acme-challenge.a.example.test.").unwrap();
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[q.len() - 4..], &[0, 16, 0, 1]);
        assert!(txt_query(1, "").is_err());
        assert!(txt_query(1, "a..b").is_err());
        assert!(txt_query(1, &"a".repeat(64)).is_err());
    }

    #[test]
    fn txt_strings_are_read_joined_and_by_owner() {
        // A pointer to the question's name (offset 12), two strings in one record.
        let pointer: &[u8] = &[0xc0, 12];
        let a = answer(
            7,
            0x8180,
            &[
                (pointer, TXT, b"\x03one\x03two"),
                (pointer, TXT, b"\x05three"),
            ],
        );
        assert_eq!(
            txt_answer(&a, 7, "_acme-challenge.a.example.test").unwrap(),
            vec!["onetwo".to_owned(), "three".to_owned()]
        );
        assert!(
            txt_answer(&a, 8, "_acme-challenge.a.example.test").is_err(),
            "wrong id"
        );
        assert!(
            txt_answer(&a, 7, "_acme-challenge.b.example.test").is_err(),
            "other name"
        );
        // NXDOMAIN: nothing; SERVFAIL: an error; TC: an error.
        let nx = answer(7, 0x8183, &[]);
        assert_eq!(
            txt_answer(&nx, 7, "_acme-challenge.a.example.test").unwrap(),
            Vec::<String>::new()
        );
        let servfail = answer(7, 0x8182, &[]);
        assert_eq!(
            txt_answer(&servfail, 7, "_acme-challenge.a.example.test"),
            Err(DnsError::Failed(2))
        );
        let cut = answer(7, 0x8380, &[]);
        assert_eq!(
            txt_answer(&cut, 7, "_acme-challenge.a.example.test"),
            Err(DnsError::Truncated)
        );
    }

    #[test]
    fn cnames_are_followed_within_the_answer() {
        let pointer: &[u8] = &[0xc0, 12];
        let target: &[u8] = b"\x06target\x04test\x00";
        let a = answer(
            9,
            0x8180,
            &[
                (pointer, 5, target),
                (target, TXT, b"\x02ok"),
                (pointer, 99, b""),
            ],
        );
        assert_eq!(
            txt_answer(&a, 9, "_acme-challenge.a.example.test").unwrap(),
            vec!["ok"]
        );
    }

    #[test]
    fn loops_and_cuts_are_errors_not_panics() {
        let looped: &[u8] = &[0xc0, 40];
        let a = answer(1, 0x8180, &[(looped, TXT, b"\x01x")]);
        assert!(txt_answer(&a, 1, "_acme-challenge.a.example.test").is_err());
        let good = answer(1, 0x8180, &[(&[0xc0, 12], TXT, b"\x01x")]);
        for cut in 0..good.len() {
            let _ = txt_answer(&good[..cut], 1, "_acme-challenge.a.example.test");
        }
        let bad_string = answer(1, 0x8180, &[(&[0xc0, 12], TXT, b"\x09x")]);
        assert!(txt_answer(&bad_string, 1, "_acme-challenge.a.example.test").is_err());
    }

    #[test]
    fn the_dns01_digest_is_rfc_8555_s() {
        // base64url(SHA-256("token.thumbprint")), by `printf %s token.thumbprint |
        // openssl dgst -sha256 -binary | basenc --base64url | tr -d =`.
        assert_eq!(
            dns01_digest("token.thumbprint"),
            "61rBZ_4knHblO0MNoxFsXZ_eTFUHum0B6IVRbhvUn5I"
        );
    }
}
