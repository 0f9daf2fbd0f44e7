//! The RFC 3464 delivery status notification for a refused message: multipart/report with a
//! human-readable part and a message/delivery-status part. (The optional third part, the
//! original headers, is left out to keep this example short.)
//!
//! Everything in the request is untrusted: addresses and texts are cleaned of control
//! characters (no header or MIME-part injection), lengths are capped, and the boundary is
//! chosen so that it occurs in no part.

use crate::time::{rfc3339, rfc5322};

const CRLF: &str = "\r\n";
/// Per-recipient blocks written at most.
const MAX_RECIPIENTS: usize = 1_000;
/// Longest address kept.
const MAX_ADDRESS: usize = 320;

/// What the bounce needs, in plain types (the glue fills it from the WIT `bounce-request`).
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The host's name, for Reporting-MTA.
    pub reporting_mta: String,
    /// The refused message's envelope sender: the bounce goes to it.
    pub original_sender: String,
    /// The refused recipients.
    pub recipients: Vec<String>,
    /// The SMTP reply code the message was refused with.
    pub code: u16,
    /// Its enhanced status code.
    pub status: String,
    /// Its text.
    pub text: String,
    /// The restriction's Reason string, if the refusal came from one.
    pub reason: Option<String>,
    /// When the message arrived.
    pub arrival: i64,
    /// When the bounce is written.
    pub now: i64,
    /// The host's unique id for the bounce.
    pub bounce_id: String,
}

/// Render the complete message, headers and body, CRLF line ends.
pub fn render(req: &Request) -> String {
    let mta = keep(&req.reporting_mta, 253, |c| {
        c.is_ascii_alphanumeric() || ".-_[]:".contains(c)
    });
    let mta = if mta.is_empty() {
        "localhost".into()
    } else {
        mta
    };
    let sender = address(&req.original_sender);
    let mut recipients: Vec<String> = req.recipients.iter().map(|r| address(r)).collect();
    recipients.retain(|r| !r.is_empty());
    recipients.truncate(MAX_RECIPIENTS);
    if recipients.is_empty() {
        recipients.push("unknown@invalid".into());
    }
    let (code, status) = reply_code(req.code, &req.status);
    let text = keep(&req.text, 900, |c| !c.is_control());

    let mut human = format!(
        "Your message wasn't delivered: your account is restricted from sending email.{CRLF}{CRLF}\
         It sent to many more outside recipients in the last hour than to colleagues, which is{CRLF}\
         what a compromised account sending spam looks like. Contact your email admin; they can{CRLF}\
         lift the restriction once the account is secured.{CRLF}{CRLF}\
         Server reply: {code} {status} {text}{CRLF}"
    );
    if let Some(reason) = &req.reason {
        human.push_str(&format!(
            "Reason: {}{CRLF}",
            keep(reason, 900, |c| !c.is_control())
        ));
    }
    human.push_str(&format!("Written: {}{CRLF}", rfc3339(req.now)));

    let mut dsn = format!(
        "Reporting-MTA: dns; {mta}{CRLF}Arrival-Date: {}{CRLF}",
        rfc5322(req.arrival)
    );
    for r in &recipients {
        let kind = if r.is_ascii() { "rfc822" } else { "utf-8" };
        dsn.push_str(&format!(
            "{CRLF}Final-Recipient: {kind}; {r}{CRLF}Action: failed{CRLF}Status: {status}{CRLF}\
             Diagnostic-Code: smtp; {code} {status} {text}{CRLF}"
        ));
    }
    let dsn_type = if recipients.iter().all(|r| r.is_ascii()) {
        "message/delivery-status"
    } else {
        "message/global-delivery-status"
    };

    let id = keep(&req.bounce_id, 56, |c| {
        c.is_ascii_alphanumeric() || ".-_".contains(c)
    });
    let id = if id.is_empty() {
        format!("dsn{}", req.now)
    } else {
        id
    };
    let mut boundary = format!("=_strict_ratio_{id}");
    while human.contains(&boundary) || dsn.contains(&boundary) {
        boundary.push('_');
    }

    let to = if sender.is_empty() {
        "undisclosed-recipients:;".to_string()
    } else {
        format!("<{sender}>")
    };
    let encoding = |s: &str| if s.is_ascii() { "7bit" } else { "8bit" };
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@{mta}>{CRLF}\
         To: {to}{CRLF}\
         Subject: Undeliverable: your message wasn't sent{CRLF}\
         Date: {date}{CRLF}\
         Message-ID: <{id}@{mta}>{CRLF}\
         Auto-Submitted: auto-replied{CRLF}\
         MIME-Version: 1.0{CRLF}\
         Content-Type: multipart/report; report-type=delivery-status;{CRLF}\tboundary=\"{boundary}\"{CRLF}\
         {CRLF}\
         --{boundary}{CRLF}\
         Content-Type: text/plain; charset=utf-8{CRLF}\
         Content-Transfer-Encoding: {human_enc}{CRLF}{CRLF}{human}\
         --{boundary}{CRLF}\
         Content-Type: {dsn_type}{CRLF}\
         Content-Transfer-Encoding: {dsn_enc}{CRLF}{CRLF}{dsn}\
         --{boundary}--{CRLF}",
        date = rfc5322(req.now),
        human_enc = encoding(&human),
        dsn_enc = encoding(&dsn),
    )
}

/// An address with nothing that could break a header or a field.
fn address(raw: &str) -> String {
    keep(raw, MAX_ADDRESS, |c| {
        !c.is_control() && !c.is_whitespace() && c != '<' && c != '>' && c != ';'
    })
}

/// A valid reply code and an enhanced status of the same class.
fn reply_code(code: u16, status: &str) -> (u16, String) {
    let code = if (400..=599).contains(&code) {
        code
    } else {
        550
    };
    let class = (code / 100).to_string();
    let parts: Vec<&str> = status.trim().split('.').collect();
    let valid = parts.len() == 3
        && parts[0] == class
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    let status = if valid {
        status.trim().to_string()
    } else {
        format!("{class}.0.0")
    };
    (code, status)
}

/// The characters of `raw` that `allowed` accepts, at most `max` bytes.
fn keep(raw: &str, max: usize, allowed: impl Fn(char) -> bool) -> String {
    let mut out = String::new();
    for c in raw.chars().filter(|&c| allowed(c)) {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_input_cannot_inject_headers_or_parts() {
        let raw = render(&Request {
            reporting_mta: "mx\r\nBcc: x".into(),
            original_sender: "a@b\r\nBcc: evil@x".into(),
            recipients: vec!["r@x\r\n--=_strict_ratio_id".into(), "".into()],
            code: 9,
            status: "garbage".into(),
            text: "t\r\nX: y".into(),
            bounce_id: "id".into(),
            ..Request::default()
        });
        assert!(!raw.replace(CRLF, "").contains(['\r', '\n']));
        assert!(!raw.contains("\r\nBcc:"));
        assert!(raw.contains("Status: 5.0.0"));
        assert_eq!(raw.matches("Final-Recipient:").count(), 1);
    }
}
