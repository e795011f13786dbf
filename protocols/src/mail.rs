//! Mail without I/O: addresses as sign-in accepts them, an RFC 5322 message of plain ASCII
//! text, SMTP's dot-stuffing (RFC 5321 §4.5.2) and its replies (§4.2). The SMTP client that
//! uses them, and the outbox, are identity-idp's.

use std::fmt::Write as _;

/// Longest address (RFC 5321 §4.5.3.1: a path of 256 octets, brackets included).
pub const MAX_ADDRESS: usize = 254;
/// Longest reply line read (RFC 5321 §4.5.3.1.5: 512 octets).
pub const MAX_REPLY_LINE: usize = 512;

/// Why mail input was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// Not an address this service sends to.
    #[error("not an email address (local@domain, ASCII, at most 254 characters)")]
    Address,
    /// A header value with a line break or a non-ASCII character.
    #[error("a mail header holds a line break or a non-ASCII character")]
    Header,
    /// A reply that is not SMTP's.
    #[error("not an SMTP reply")]
    Reply,
}

/// `text` as an address: `local@domain`, printable ASCII without spaces, quotes, angle
/// brackets or commas, a domain of dot-separated labels of letters, digits and hyphens;
/// lowercased (the service compares addresses case-insensitively).
pub fn address(text: &str) -> Result<String, MailError> {
    let text = text.trim();
    if text.is_empty() || text.len() > MAX_ADDRESS {
        return Err(MailError::Address);
    }
    let (local, domain) = text.rsplit_once('@').ok_or(MailError::Address)?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b));
    let domain_ok = domain.split('.').count() >= 2
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if local_ok && domain_ok {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(MailError::Address)
    }
}

/// One message: its headers and body, ASCII text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// `From:` (an address).
    pub from: &'a str,
    /// `To:` (an address).
    pub to: &'a str,
    /// `Subject:`.
    pub subject: &'a str,
    /// The body, lines separated by `\n`.
    pub body: &'a str,
    /// `Date:`, Unix seconds.
    pub date: u64,
    /// The unique part of `Message-ID:` (before the `@`).
    pub id: &'a str,
}

fn header_ok(value: &str) -> bool {
    value.bytes().all(|b| (0x20..0x7f).contains(&b))
}

impl Message<'_> {
    /// The message as RFC 5322 text, lines ending in CRLF.
    pub fn render(&self) -> Result<String, MailError> {
        let headers = [self.from, self.to, self.subject, self.id];
        if !headers.iter().all(|h| header_ok(h)) || !self.body.is_ascii() {
            return Err(MailError::Header);
        }
        let domain = self.from.rsplit_once('@').map_or("localhost", |(_, d)| d);
        let mut out = String::new();
        let _ = write!(
            out,
            "From: {}\r\nTo: {}\r\nSubject: {}\r\nDate: {}\r\nMessage-ID: <{}@{}>\r\n\
             MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\
             Content-Transfer-Encoding: 7bit\r\n\r\n",
            self.from,
            self.to,
            self.subject,
            rfc5322_date(self.date),
            self.id,
            domain,
        );
        for line in self.body.lines() {
            out.push_str(line.trim_end_matches('\r'));
            out.push_str("\r\n");
        }
        Ok(out)
    }
}

/// `unix` as RFC 5322 §3.3 date-time, in UTC: `Sun, 06 Dec 2026 06:40:14 +0000`.
pub fn rfc5322_date(unix: u64) -> String {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // 1970-01-01 was a Thursday.
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]
        .get(usize::try_from(days % 7).unwrap_or(0))
        .copied()
        .unwrap_or("Thu");
    let (year, month, day) = crate::civil_from_days(days);
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .get(usize::try_from(month.saturating_sub(1)).unwrap_or(0))
    .copied()
    .unwrap_or("Jan");
    format!(
        "{weekday}, {day:02} {month} {year} {:02}:{:02}:{:02} +0000",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// A rendered message as SMTP's DATA sends it: every line that begins with `.` gets another
/// one, and the terminating `.` line follows.
pub fn dot_stuffed(message: &str) -> String {
    let mut out = String::with_capacity(message.len() + 8);
    for line in message.split_inclusive("\r\n") {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
    }
    if !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    out.push_str(".\r\n");
    out
}

/// One line of a reply: its code and whether more lines follow (`250-` against `250 `).
pub fn reply_line(line: &str) -> Result<(u16, bool), MailError> {
    let line = line.trim_end_matches(['\r', '\n']);
    let code = line
        .get(..3)
        .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|c| (200..600).contains(c))
        .ok_or(MailError::Reply)?;
    match line.as_bytes().get(3) {
        None | Some(b' ') => Ok((code, false)),
        Some(b'-') => Ok((code, true)),
        Some(_) => Err(MailError::Reply),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_plain_and_lowercased() {
        assert_eq!(address(" Alice@Example.COM ").unwrap(), "alice@example.com");
        assert_eq!(
            address("a.b+tag@mail.example.org").unwrap(),
            "a.b+tag@mail.example.org"
        );
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@localhost",
            "alice@exa mple.com",
            "al ice@example.com",
            "alice@example.com\r\nBcc: x@y.z",
            "\"a\"@example.com",
            "<alice@example.com>",
            "a..b@example.com",
            "alice@-example.com",
            "alice@example..com",
            "älice@example.com",
            &format!("{}@example.com", "a".repeat(65)),
        ] {
            assert_eq!(address(bad), Err(MailError::Address), "{bad:?}");
        }
    }

    #[test]
    fn a_message_is_crlf_text_with_its_headers() {
        let m = Message {
            from: "idp@example.com",
            to: "alice@example.com",
            subject: "Your sign-in link",
            body: "Open:\nhttps://idp.example.com/x\n.hidden\n",
            date: 1_796_539_214,
            id: "abc",
        };
        let text = m.render().unwrap();
        assert!(text.starts_with("From: idp@example.com\r\nTo: alice@example.com\r\n"));
        assert!(
            text.contains("\r\nDate: Sun, 06 Dec 2026 06:40:14 +0000\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nMessage-ID: <abc@example.com>\r\n"));
        assert!(text.ends_with("\r\n\r\nOpen:\r\nhttps://idp.example.com/x\r\n.hidden\r\n"));
        assert!(!text.replace("\r\n", "").contains('\n'));
        let stuffed = dot_stuffed(&text);
        assert!(stuffed.ends_with("\r\n..hidden\r\n.\r\n"), "{stuffed}");
        // Header injection is refused.
        let bad = Message {
            subject: "x\r\nBcc: eve@example.com",
            ..m.clone()
        };
        assert_eq!(bad.render(), Err(MailError::Header));
        let bad = Message { body: "é", ..m };
        assert_eq!(bad.render(), Err(MailError::Header));
    }

    #[test]
    fn dates_follow_the_calendar() {
        assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(4_133_980_799),
            "Fri, 31 Dec 2100 23:59:59 +0000"
        );
    }

    #[test]
    fn replies_are_read_line_by_line() {
        assert_eq!(reply_line("250-smtp.example.com\r\n"), Ok((250, true)));
        assert_eq!(reply_line("250 STARTTLS\r\n"), Ok((250, false)));
        assert_eq!(reply_line("354"), Ok((354, false)));
        for bad in ["", "25", "abc hello", "250x", "999 no", "100 no"] {
            assert_eq!(reply_line(bad), Err(MailError::Reply), "{bad}");
        }
    }
}
