//! Bounds on what one policy request may contain, and the UTF-8 rule.
//!
//! The peer is normally Postfix, but the listening socket accepts anyone who can reach it, so
//! every dimension of a request is bounded *while it is read*: a client can make the server hold
//! at most [`Limits::max_request_bytes`] per connection, however it misbehaves.

/// Default for [`Limits::max_line_bytes`]: 4 KiB.
///
/// Every attribute value that an SMTP client controls (HELO name, sender, recipient, ETRN
/// domain) comes from an SMTP command line, and Postfix caps those at `line_length_limit`
/// (default 2048 bytes). 4096 doubles that for the attribute name and any operator who raised
/// `line_length_limit`, and still fits a TLS subject or issuer after xtext encoding (`+XX` per
/// special byte, so up to 3x its raw length).
pub const DEFAULT_MAX_LINE_BYTES: usize = 4096;

/// Default for [`Limits::max_attributes`]: 128.
///
/// Postfix 3.8 and later send 31 attributes (see [`crate::Attribute::ALL`]); 128 is four times
/// that, room for attributes that future Postfix versions add (they are ignored, but counted)
/// without letting a client stream an endless request one tiny line at a time.
pub const DEFAULT_MAX_ATTRIBUTES: usize = 128;

/// Default for [`Limits::max_request_bytes`]: 32 KiB.
///
/// A real request is 1-2 KiB. 32 KiB admits eight attributes at the full
/// [`DEFAULT_MAX_LINE_BYTES`] plus all the ordinary ones, while bounding the memory a
/// connection can pin: 1,000 idle-but-hostile connections hold at most 32 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 32 * 1024;

/// What to do with attribute values that are not valid UTF-8.
///
/// Postfix passes envelope addresses through as the client sent them. With `SMTPUTF8` they are
/// UTF-8; a client that does not use `SMTPUTF8` can still put 8-bit bytes (Latin-1, say) into
/// `MAIL FROM` and `RCPT TO`, and Postfix relays those bytes to the policy service unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Utf8Policy {
    /// Decode known attribute values with [`String::from_utf8_lossy`] (each invalid sequence
    /// becomes U+FFFD) and record the attribute in [`crate::Request::lossy_utf8`].
    ///
    /// The default, because rejecting the request would close the connection and make Postfix
    /// apply its `default_action` to the message: with a fail-open default, a submitter could
    /// dodge every limit by adding one 8-bit byte to a recipient. Lossy decoding can only make
    /// two distinct 8-bit addresses look alike (their counts merge, which errs on the strict
    /// side); it never lets a request through uncounted. Unknown attributes are not decoded at
    /// all, so their bytes never matter.
    #[default]
    Lossy,
    /// Fail the whole request with [`crate::ParseError::InvalidUtf8`] if any line (name or
    /// value, known attribute or not) is not valid UTF-8.
    Reject,
}

/// Bounds on one policy request, enforced while reading.
///
/// Each knob counts bytes as they arrive on the wire. A value of 0 rejects every request that
/// has anything in that dimension; there is no "unlimited".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest attribute line, in bytes, not counting its `\n` (a `\r` before it does count).
    /// Default [`DEFAULT_MAX_LINE_BYTES`].
    pub max_line_bytes: usize,
    /// Most `name=value` lines in one request, known and unknown attributes alike. Default
    /// [`DEFAULT_MAX_ATTRIBUTES`].
    pub max_attributes: usize,
    /// Largest request, in bytes, counting every line terminator and the final empty line.
    /// Default [`DEFAULT_MAX_REQUEST_BYTES`].
    pub max_request_bytes: usize,
    /// What to do with values that are not valid UTF-8. Default [`Utf8Policy::Lossy`].
    pub invalid_utf8: Utf8Policy,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            max_attributes: DEFAULT_MAX_ATTRIBUTES,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            invalid_utf8: Utf8Policy::default(),
        }
    }
}
