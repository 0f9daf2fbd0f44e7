//! The Postfix SMTP access policy delegation protocol (`check_policy_service`), and nothing
//! else: no policy decisions here.
//!
//! Postfix sends a request as `name=value` lines ended by an empty line, and reads back one
//! `action=<text>` line and an empty line; one connection carries many requests. This crate:
//!
//! - parses a request into a typed [`Request`] ([`parse_request`], and [`RequestReader`] over
//!   any `tokio::io::AsyncBufRead`), under [`Limits`] enforced while reading;
//! - reports malformed input as a typed [`ParseError`] / [`ReadError`], after which the server
//!   must answer nothing and close the connection (the protocol's rule for trouble);
//! - formats sanitised responses ([`Action`], [`write_response`]).
//!
//! ```
//! use quench_postfix_policy::{Action, ProtocolState, parse_request};
//!
//! let request = parse_request(
//!     b"request=smtpd_access_policy\nprotocol_state=RCPT\nsasl_username=alice\n\
//!       sender=alice@contoso.com\nrecipient=bob@fabrikam.com\nsize=1024\n\n",
//! )?;
//! assert_eq!(request.protocol_state, Some(ProtocolState::Rcpt));
//! assert_eq!(request.size, Some(1024));
//! let action = Action::smtp_reply(550, "5.1.8 Access denied, bad outbound sender")?;
//! assert_eq!(action.to_response(), "action=550 5.1.8 Access denied, bad outbound sender\n\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

mod attributes;
mod error;
mod framer;
mod limits;
mod reader;
mod request;
mod response;

pub use attributes::{Attribute, ProtocolName, ProtocolState, RequestType, decode_xtext};
pub use error::{ParseError, ReadError};
pub use limits::{
    DEFAULT_MAX_ATTRIBUTES, DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_REQUEST_BYTES, Limits, Utf8Policy,
};
pub use reader::RequestReader;
pub use request::{Request, parse_request, parse_request_with};
pub use response::{Action, ActionError, MAX_ACTION_BYTES, write_response};
