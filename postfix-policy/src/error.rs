//! Why a request could not be parsed or read.
//!
//! Every error means the same thing to a server: the request is not answered; log it and close
//! the connection (the protocol's rule for trouble: never a half answer). Postfix then retries
//! on a new connection and, failing that, applies its `default_action`.

use std::io;

/// A malformed or over-limit request. Line numbers count from 1 within the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// A non-empty line without `=`.
    #[error("line {line}: attribute has no '='")]
    MissingEquals {
        /// The offending line.
        line: usize,
    },
    /// A line that starts with `=`.
    #[error("line {line}: attribute name is empty")]
    EmptyName {
        /// The offending line.
        line: usize,
    },
    /// A NUL byte in a name or value (the protocol forbids it).
    #[error("line {line}: NUL byte in attribute")]
    NulByte {
        /// The offending line.
        line: usize,
    },
    /// A line longer than [`crate::Limits::max_line_bytes`].
    #[error("line {line}: longer than {limit} bytes")]
    LineTooLong {
        /// The offending line.
        line: usize,
        /// The limit in force.
        limit: usize,
    },
    /// More than [`crate::Limits::max_attributes`] lines.
    #[error("more than {limit} attributes in one request")]
    TooManyAttributes {
        /// The limit in force.
        limit: usize,
    },
    /// More than [`crate::Limits::max_request_bytes`] bytes.
    #[error("request larger than {limit} bytes")]
    RequestTooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// Bytes that are not UTF-8, under [`crate::Utf8Policy::Reject`].
    #[error("line {line}: invalid UTF-8")]
    InvalidUtf8 {
        /// The offending line.
        line: usize,
    },
    /// No `request` attribute, or an empty one (it is required).
    #[error("request has no 'request' attribute")]
    MissingRequestType,
    /// The input ended before the empty line that ends a request. From the reader: the peer
    /// closed the connection mid-request.
    #[error("input ended mid-request, after {bytes} bytes")]
    UnexpectedEof {
        /// Bytes of the unfinished request.
        bytes: usize,
    },
    /// [`crate::parse_request`] only: bytes after the empty line that ends the request.
    #[error("{bytes} bytes after the end of the request")]
    TrailingData {
        /// How many.
        bytes: usize,
    },
}

impl ParseError {
    /// A short, stable label for logs and metrics (`missing_equals`, `line_too_long`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            ParseError::MissingEquals { .. } => "missing_equals",
            ParseError::EmptyName { .. } => "empty_name",
            ParseError::NulByte { .. } => "nul_byte",
            ParseError::LineTooLong { .. } => "line_too_long",
            ParseError::TooManyAttributes { .. } => "too_many_attributes",
            ParseError::RequestTooLarge { .. } => "request_too_large",
            ParseError::InvalidUtf8 { .. } => "invalid_utf8",
            ParseError::MissingRequestType => "missing_request_type",
            ParseError::UnexpectedEof { .. } => "unexpected_eof",
            ParseError::TrailingData { .. } => "trailing_data",
        }
    }
}

/// Why [`crate::RequestReader::read_request`] returned no request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The peer sent a malformed or over-limit request, or closed the connection mid-request
    /// ([`ParseError::UnexpectedEof`]).
    #[error("bad policy request: {0}")]
    Protocol(#[from] ParseError),
    /// Reading from the connection failed.
    #[error("reading policy request: {0}")]
    Io(#[from] io::Error),
}

impl ReadError {
    /// A short, stable label for logs and metrics: the [`ParseError::kind`], or `io`.
    pub fn kind(&self) -> &'static str {
        match self {
            ReadError::Protocol(e) => e.kind(),
            ReadError::Io(_) => "io",
        }
    }
}
