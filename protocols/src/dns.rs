//! The DNS messages ACME's dns-01 validation needs (RFC 1035, RFC 8555 §8.4), pure: a
//! recursive query for the TXT records of one name, and the TXT strings of its answer. The
//! caller sends and receives (UDP), chooses the query id and checks where the answer came
//! from.

use base64::Engine as _;

/// The TXT record type.
const TXT: u16 = 16;
/// The CNAME record type.
const CNAME: u16 = 5;
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

/// A query (id `id`, recursion desired, EDNS0 with a 1232-byte UDP payload) for the TXT
/// records of `name`, its letters' case as given (a caller may randomise it, RFC draft
/// "0x20": [`txt_answer`] then wants the question echoed byte for byte).
pub fn txt_query(id: u16, name: &str) -> Result<Vec<u8>, DnsError> {
    let name = name.trim_end_matches('.');
    let bad = || DnsError::BadName(name.to_owned());
    if name.is_empty() || name.len() > 253 {
        return Err(bad());
    }
    let mut out = Vec::with_capacity(29 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x00]); // RD
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 1]); // QDCOUNT 1, ARCOUNT 1 (OPT)
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
    // OPT: root owner, type 41, class = UDP payload size, no flags, no options.
    out.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    Ok(out)
}

/// A name as its labels, ASCII lowercased (compared label by label, never joined).
type Name = Vec<Vec<u8>>;

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

    /// A (possibly compressed) name; the cursor moves past it.
    fn name(&mut self) -> Result<Name, DnsError> {
        let mut labels: Name = Vec::new();
        let mut total = 0usize;
        let mut at = self.at;
        let mut jumped = false;
        // Each pointer must point before the last one followed: no loops.
        let mut limit = at;
        loop {
            let len = *self
                .message
                .get(at)
                .ok_or(DnsError::Malformed("name cut short"))?;
            match len {
                0 => {
                    if !jumped {
                        self.at = at.saturating_add(1);
                    }
                    break;
                }
                l if l & 0xc0 == 0xc0 => {
                    let low = *self
                        .message
                        .get(at.saturating_add(1))
                        .ok_or(DnsError::Malformed("pointer cut short"))?;
                    let target = (usize::from(l & 0x3f) << 8) | usize::from(low);
                    if target >= limit {
                        return Err(DnsError::Malformed(
                            "a name pointer that does not point back",
                        ));
                    }
                    if !jumped {
                        self.at = at.saturating_add(2);
                    }
                    jumped = true;
                    limit = target;
                    at = target;
                }
                l if l & 0xc0 == 0 => {
                    let start = at.saturating_add(1);
                    let label = self
                        .message
                        .get(start..start.saturating_add(usize::from(l)))
                        .ok_or(DnsError::Malformed("label cut short"))?;
                    total = total.saturating_add(label.len() + 1);
                    if total > 255 {
                        return Err(DnsError::Malformed("name too long"));
                    }
                    labels.push(label.to_ascii_lowercase());
                    at = start.saturating_add(usize::from(l));
                }
                _ => return Err(DnsError::Malformed("a label type not defined")),
            }
        }
        Ok(labels)
    }
}

/// One answer record as read: (owner, type, the record data's offset and length).
type Record = (Name, u16, usize, usize);

/// The TXT strings of the name asked in `answer` to `query` (made by [`txt_query`]), each
/// record's character-strings joined (RFC 8555 §8.4). The answer must echo the query's id and
/// its one question byte for byte (letter case included); NXDOMAIN and an empty answer are no
/// strings. CNAMEs in the answer are followed (at most 8); a name with a CNAME and other
/// records is refused.
pub fn txt_answer(answer: &[u8], query: &[u8]) -> Result<Vec<String>, DnsError> {
    if answer.len() > MAX_ANSWER {
        return Err(DnsError::Malformed("too large"));
    }
    // The query's question: its name (uncompressed, up to the root label), type and class.
    let name_end = query
        .get(12..)
        .and_then(|q| q.iter().position(|b| *b == 0))
        .ok_or(DnsError::Malformed("not a query"))?;
    let question = query
        .get(12..12 + name_end + 5)
        .ok_or(DnsError::Malformed("not a query"))?;
    let mut asked = Reader {
        message: query,
        at: 12,
    };
    let wanted = asked.name()?;
    let mut r = Reader {
        message: answer,
        at: 0,
    };
    let id = query.get(..2).ok_or(DnsError::Malformed("not a query"))?;
    if r.take(2)? != id {
        return Err(DnsError::Malformed("not the answer to this query (id)"));
    }
    let flags = r.u16()?;
    if flags & 0x8000 == 0 {
        return Err(DnsError::Malformed(
            "not the answer to this query (a query)",
        ));
    }
    let (questions, answers) = (r.u16()?, r.u16()?);
    r.take(4)?; // NSCOUNT, ARCOUNT: not read
    if questions != 1 || r.take(question.len())? != question {
        return Err(DnsError::Malformed(
            "not the answer to this query (question)",
        ));
    }
    if flags & 0x0200 != 0 {
        return Err(DnsError::Truncated);
    }
    match (flags & 0x000f) as u8 {
        0 => {}
        3 => return Ok(Vec::new()),
        other => return Err(DnsError::Failed(other)),
    }
    let mut records: Vec<Record> = Vec::new();
    for _ in 0..answers {
        let owner = r.name()?;
        let (rtype, class) = (r.u16()?, r.u16()?);
        r.take(4)?; // TTL
        let len = usize::from(r.u16()?);
        let start = r.at;
        r.take(len)?;
        if class == IN {
            records.push((owner, rtype, start, len));
        }
    }
    let mut owner = wanted;
    for _ in 0..=8 {
        let of_owner: Vec<&Record> = records.iter().filter(|rec| rec.0 == owner).collect();
        let cname = of_owner.iter().find(|rec| rec.1 == CNAME);
        match cname {
            Some(&&(_, _, start, len)) => {
                if of_owner.len() > 1 {
                    return Err(DnsError::Malformed("a CNAME beside other records"));
                }
                let mut target = Reader {
                    message: answer,
                    at: start,
                };
                let next = target.name()?;
                if target.at != start + len {
                    return Err(DnsError::Malformed("a CNAME's data is not one name"));
                }
                owner = next;
            }
            None => {
                let mut out = Vec::new();
                for &&(_, rtype, start, len) in &of_owner {
                    if rtype != TXT {
                        continue;
                    }
                    let mut rest = answer
                        .get(start..start + len)
                        .ok_or(DnsError::Malformed("cut short"))?;
                    let mut text = Vec::new();
                    while let Some((&n, tail)) = rest.split_first() {
                        let part = tail
                            .get(..usize::from(n))
                            .ok_or(DnsError::Malformed("TXT string cut short"))?;
                        text.extend_from_slice(part);
                        rest = tail.get(usize::from(n)..).unwrap_or_default();
                    }
                    out.push(String::from_utf8_lossy(&text).into_owned());
                }
                return Ok(out);
            }
        }
    }
    Err(DnsError::Malformed("more than 8 CNAMEs"))
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

    const OWNER: &str = "_acme-challenge.a.example.test";

    /// An answer to `query` with `flags` and `records` (owner name as written, type, data),
    /// the question echoed as `question` (normally the query's).
    fn answer_with(
        query: &[u8],
        question: &[u8],
        flags: u16,
        records: &[(&[u8], u16, &[u8])],
    ) -> Vec<u8> {
        let mut out = query[..2].to_vec();
        out.extend_from_slice(&flags.to_be_bytes());
        out.extend_from_slice(&[0, 1]);
        out.extend_from_slice(&(records.len() as u16).to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(question);
        for (name, rtype, data) in records {
            out.extend_from_slice(name);
            out.extend_from_slice(&rtype.to_be_bytes());
            out.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
            out.extend_from_slice(&(data.len() as u16).to_be_bytes());
            out.extend_from_slice(data);
        }
        out
    }

    fn question(query: &[u8]) -> &[u8] {
        &query[12..query.len() - 11]
    }

    fn answer(query: &[u8], flags: u16, records: &[(&[u8], u16, &[u8])]) -> Vec<u8> {
        answer_with(query, question(query), flags, records)
    }

    /// What dnsmasq 2.90 (Debian) answered to a query (id 0x1234, no EDNS) for
    /// `_acme-challenge.x.test` TXT, run with `--txt-record=_acme-challenge.x.test,hello`.
    const DNSMASQ: &str = "1234858000010001000000000f5f61636d652d6368616c6c656e6765017804746573\
                           740000100001c00c001000010000000000060568656c6c6f";

    #[test]
    fn dnsmasq_s_answer_is_read() {
        let bytes: Vec<u8> = (0..DNSMASQ.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&DNSMASQ[i..i + 2], 16).unwrap())
            .collect();
        let query = txt_query(0x1234, "_acme-challenge.x.test").unwrap();
        assert_eq!(txt_answer(&bytes, &query).unwrap(), vec!["hello"]);
    }

    #[test]
    fn a_query_asks_for_txt_records_recursively_with_edns() {
        let q = txt_query(0x1234, "_acme-challenge.a.example.test.").unwrap();
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[q.len() - 15..q.len() - 11], &[0, 16, 0, 1]);
        assert_eq!(&q[q.len() - 11..q.len() - 8], &[0, 0, 41]);
        assert!(txt_query(1, "").is_err());
        assert!(txt_query(1, "a..b").is_err());
        assert!(txt_query(1, &"a".repeat(64)).is_err());
    }

    #[test]
    fn txt_strings_are_read_joined_and_by_owner() {
        let query = txt_query(7, OWNER).unwrap();
        // A pointer to the question's name (offset 12), two strings in one record.
        let pointer: &[u8] = &[0xc0, 12];
        let a = answer(
            &query,
            0x8180,
            &[
                (pointer, TXT, b"\x03one\x03two"),
                (pointer, TXT, b"\x05three"),
            ],
        );
        assert_eq!(
            txt_answer(&a, &query).unwrap(),
            vec!["onetwo".to_owned(), "three".to_owned()]
        );
        let other_id = txt_query(8, OWNER).unwrap();
        assert!(txt_answer(&a, &other_id).is_err(), "wrong id");
        let other_name = txt_query(7, "_acme-challenge.b.example.test").unwrap();
        assert!(txt_answer(&a, &other_name).is_err(), "other name");
        // NXDOMAIN: nothing; SERVFAIL: an error; TC: an error.
        assert_eq!(
            txt_answer(&answer(&query, 0x8183, &[]), &query).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            txt_answer(&answer(&query, 0x8182, &[]), &query),
            Err(DnsError::Failed(2))
        );
        assert_eq!(
            txt_answer(&answer(&query, 0x8380, &[]), &query),
            Err(DnsError::Truncated)
        );
    }

    #[test]
    fn the_question_must_come_back_byte_for_byte() {
        // Mixed case asked (0x20): the same name in other case is not the answer.
        let query = txt_query(7, "_ACME-challenge.A.example.TEST").unwrap();
        let lower = txt_query(7, OWNER).unwrap();
        let pointer: &[u8] = &[0xc0, 12];
        let echoed = answer(&query, 0x8180, &[(pointer, TXT, b"\x02ok")]);
        assert_eq!(txt_answer(&echoed, &query).unwrap(), vec!["ok"]);
        let lowered = answer_with(
            &query,
            question(&lower),
            0x8180,
            &[(pointer, TXT, b"\x02ok")],
        );
        assert!(txt_answer(&lowered, &query).is_err());
        // No question, or two: not an answer to this query.
        let mut none = answer(&query, 0x8180, &[]);
        none[5] = 0;
        assert!(txt_answer(&none, &query).is_err());
        // A query, not an answer.
        assert!(txt_answer(&answer(&query, 0x0100, &[]), &query).is_err());
    }

    #[test]
    fn cnames_are_followed_within_the_answer() {
        let query = txt_query(9, OWNER).unwrap();
        let pointer: &[u8] = &[0xc0, 12];
        let target: &[u8] = b"\x06target\x04test\x00";
        let a = answer(
            &query,
            0x8180,
            &[
                (pointer, CNAME, target),
                (target, TXT, b"\x02ok"),
                (pointer, 99, b""),
            ],
        );
        assert!(
            txt_answer(&a, &query).is_err(),
            "a CNAME beside other records"
        );
        let a = answer(
            &query,
            0x8180,
            &[(pointer, CNAME, target), (target, TXT, b"\x02ok")],
        );
        assert_eq!(txt_answer(&a, &query).unwrap(), vec!["ok"]);
        // A CNAME whose data is not exactly one name.
        let long: &[u8] = b"\x06target\x04test\x00\x00";
        let a = answer(
            &query,
            0x8180,
            &[(pointer, CNAME, long), (target, TXT, b"\x02ok")],
        );
        assert!(txt_answer(&a, &query).is_err());
        // A label with a dot is not two labels.
        let dotted: &[u8] = b"\x11_acme-challenge.a\x07example\x04test\x00";
        let a = answer(&query, 0x8180, &[(dotted, TXT, b"\x02no")]);
        assert_eq!(txt_answer(&a, &query).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn loops_and_cuts_are_errors_not_panics() {
        let query = txt_query(1, OWNER).unwrap();
        let looped: &[u8] = &[0xc0, 60];
        let a = answer(&query, 0x8180, &[(looped, TXT, b"\x01x")]);
        assert!(txt_answer(&a, &query).is_err());
        let good = answer(&query, 0x8180, &[(&[0xc0, 12], TXT, b"\x01x")]);
        for cut in 0..good.len() {
            let _ = txt_answer(&good[..cut], &query);
        }
        let bad_string = answer(&query, 0x8180, &[(&[0xc0, 12], TXT, b"\x09x")]);
        assert!(txt_answer(&bad_string, &query).is_err());
        assert!(txt_answer(&good, &[]).is_err());
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
