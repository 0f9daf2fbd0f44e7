//! The policy server's answer: `action=<text>` and an empty line.

use std::fmt;
use std::io;

use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Longest action text, in bytes; longer text is cut at a character boundary.
///
/// Postfix turns an SMTP-reply action into one SMTP reply line, and RFC 5321 caps a reply line
/// at 512 bytes including the code and CRLF. Postfix may also prefix the text (for example
/// `<address>: Sender address rejected: `), so a reply near this bound is already too long for
/// strict clients; the cap only keeps a runaway message (a policy echoing attacker-controlled
/// text) from becoming a multi-kilobyte line.
pub const MAX_ACTION_BYTES: usize = 512;

/// A sanitised action for a policy response: any Postfix SMTPD `access(5)` action.
///
/// Every constructor replaces control characters (CR, LF, NUL, TAB, DEL, C1 controls) and the
/// Unicode line and paragraph separators with spaces, trims surrounding whitespace and caps the
/// length at [`MAX_ACTION_BYTES`], so no input can end the response early or smuggle a second
/// attribute or response onto the connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Action(String);

/// An action that cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ActionError {
    /// Nothing is left after sanitising; Postfix would treat an empty action as an error.
    #[error("empty policy action")]
    Empty,
    /// An SMTP reply code outside 400..=599 (Postfix accepts only 4xx and 5xx replies).
    #[error("SMTP reply code {0} is not 4xx or 5xx")]
    ReplyCode(u16),
}

impl Action {
    /// `DUNNO`: no opinion; Postfix goes on with the next restriction.
    pub fn dunno() -> Self {
        Action("DUNNO".to_owned())
    }

    /// `OK`: accept, skipping the rest of this restriction list.
    pub fn ok() -> Self {
        Action("OK".to_owned())
    }

    /// `REJECT [text]`: permanent rejection with Postfix's `access_map_reject_code` (554 by
    /// default). Prefer [`Action::smtp_reply`] to choose the code and enhanced status.
    pub fn reject(text: &str) -> Self {
        Self::keyword("REJECT", text)
    }

    /// `DEFER [text]`: temporary rejection (`access_map_defer_code`, 450 by default).
    pub fn defer(text: &str) -> Self {
        Self::keyword("DEFER", text)
    }

    /// `DEFER_IF_PERMIT [text]`: temporary rejection, unless a later restriction rejects
    /// permanently. The right answer for a throttle that must not turn into a restriction.
    pub fn defer_if_permit(text: &str) -> Self {
        Self::keyword("DEFER_IF_PERMIT", text)
    }

    /// `DEFER_IF_REJECT [text]`: temporary rejection, if a later restriction would reject.
    pub fn defer_if_reject(text: &str) -> Self {
        Self::keyword("DEFER_IF_REJECT", text)
    }

    /// `HOLD [text]`: accept into the hold queue.
    pub fn hold(text: &str) -> Self {
        Self::keyword("HOLD", text)
    }

    /// `DISCARD [text]`: accept and silently drop.
    pub fn discard(text: &str) -> Self {
        Self::keyword("DISCARD", text)
    }

    /// `WARN text`: log a warning, no effect on delivery.
    pub fn warn(text: &str) -> Self {
        Self::keyword("WARN", text)
    }

    /// An SMTP reply, `code text`: `Action::smtp_reply(550, "5.1.8 Access denied, bad outbound
    /// sender")` is sent as `action=550 5.1.8 Access denied, bad outbound sender`.
    ///
    /// Postfix may rewrite the enhanced status code's middle part to fit the restriction class
    /// that ran the policy (from `smtpd_recipient_restrictions` a 5.1.8 reaches the client as
    /// 5.1.2); that is configuration, not protocol.
    pub fn smtp_reply(code: u16, text: &str) -> Result<Self, ActionError> {
        if !(400..=599).contains(&code) {
            return Err(ActionError::ReplyCode(code));
        }
        Ok(Self::keyword(&code.to_string(), text))
    }

    /// Any action text, sanitised: for operator-configured actions such as a `default_action`
    /// of `451 4.3.5 Server configuration problem` or `PREPEND X-Quench: seen`.
    pub fn raw(text: &str) -> Result<Self, ActionError> {
        let text = sanitize(text);
        if text.is_empty() {
            Err(ActionError::Empty)
        } else {
            Ok(Action(text))
        }
    }

    fn keyword(keyword: &str, text: &str) -> Self {
        let text = sanitize(text);
        if text.is_empty() {
            Action(keyword.to_owned())
        } else {
            Action(sanitize(&format!("{keyword} {text}")))
        }
    }

    /// The action text (what follows `action=`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The whole response: `action=<text>\n\n`.
    pub fn to_response(&self) -> String {
        format!("action={}\n\n", self.0)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Writes `action=<text>\n\n` and flushes.
pub async fn write_response<W>(writer: &mut W, action: &Action) -> io::Result<()>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    writer.write_all(action.to_response().as_bytes()).await?;
    writer.flush().await
}

/// Control characters and line separators become spaces; then trim and cap the length.
fn sanitize(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                ' '
            } else {
                c
            }
        })
        .collect();
    let mut cleaned = cleaned.trim();
    if cleaned.len() > MAX_ACTION_BYTES {
        let mut end = MAX_ACTION_BYTES;
        while !cleaned.is_char_boundary(end) {
            end -= 1;
        }
        cleaned = cleaned[..end].trim_end();
    }
    cleaned.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(Action::dunno().to_response(), "action=DUNNO\n\n");
        assert_eq!(Action::ok().as_str(), "OK");
        assert_eq!(
            Action::smtp_reply(550, "5.1.8 Access denied, bad outbound sender")
                .unwrap()
                .to_response(),
            "action=550 5.1.8 Access denied, bad outbound sender\n\n"
        );
        assert_eq!(
            Action::defer_if_permit("4.7.1 Slow down").as_str(),
            "DEFER_IF_PERMIT 4.7.1 Slow down"
        );
        assert_eq!(Action::reject("").as_str(), "REJECT");
        assert_eq!(Action::defer("  ").as_str(), "DEFER");
        assert_eq!(
            Action::smtp_reply(250, "ok"),
            Err(ActionError::ReplyCode(250))
        );
        assert_eq!(
            Action::smtp_reply(600, "x"),
            Err(ActionError::ReplyCode(600))
        );
        assert_eq!(Action::raw(" \r\n "), Err(ActionError::Empty));
    }

    #[test]
    fn no_injection() {
        let evil = "5.7.1 no\n\naction=OK\r\n\0\t\u{85}\u{2028}x";
        let action = Action::smtp_reply(550, evil).unwrap();
        let response = action.to_response();
        assert_eq!(response.matches('\n').count(), 2);
        assert!(response.ends_with("\n\n"));
        assert!(!response.contains('\r') && !response.contains('\0'));
        assert!(response.starts_with("action=550 5.7.1 no  action=OK"));
        let raw = Action::raw("DUNNO\n\naction=REJECT").unwrap();
        assert_eq!(raw.as_str(), "DUNNO  action=REJECT");
    }

    #[test]
    fn length_cap_respects_char_boundaries() {
        let long = "é".repeat(MAX_ACTION_BYTES);
        let action = Action::raw(&long).unwrap();
        assert!(action.as_str().len() <= MAX_ACTION_BYTES);
        assert!(action.as_str().chars().all(|c| c == 'é'));
        let reply = Action::smtp_reply(550, &"x".repeat(2000)).unwrap();
        assert_eq!(reply.as_str().len(), MAX_ACTION_BYTES);
        assert!(reply.as_str().starts_with("550 xxx"));
    }
}
