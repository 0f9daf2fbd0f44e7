//! One policy request as a typed struct, and the synchronous parser.

use std::borrow::Cow;
use std::net::IpAddr;

use crate::framer::Framer;
use crate::{Attribute, Limits, ParseError, ProtocolName, ProtocolState, RequestType, Utf8Policy};

/// One delegated SMTPD access policy request, every documented attribute typed.
///
/// Text attributes are `String`s, empty when Postfix sent them empty or not at all (the README
/// makes the two equivalent; for `sender` empty means the null sender `<>`). Values are as
/// sent: no case folding, no bracket stripping; normalising addresses into entity keys is the
/// caller's job. Numeric attributes are `None` when absent, empty, `unknown` (Postfix's word
/// for an unavailable port) or malformed; a malformed one is also listed in
/// [`Request::malformed`], so a garbled number never costs the request. When an attribute is
/// sent more than once, the last value wins (the README allows first or last) and
/// [`Request::duplicate_attributes`] counts it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// `request`: required; Postfix sends `smtpd_access_policy`.
    pub request: RequestType,
    /// `protocol_state`: the SMTP stage; `None` when absent or empty.
    pub protocol_state: Option<ProtocolState>,
    /// `protocol_name`: SMTP or ESMTP; `None` when absent or empty.
    pub protocol_name: Option<ProtocolName>,
    /// `helo_name`.
    pub helo_name: String,
    /// `queue_id`.
    pub queue_id: String,
    /// `sender`: the envelope sender without angle brackets; empty for `<>`.
    pub sender: String,
    /// `recipient`.
    pub recipient: String,
    /// `recipient_count`: accepted recipients, non-zero only at DATA and END-OF-MESSAGE.
    pub recipient_count: Option<u32>,
    /// `client_address`: an IP address as text, or `unknown`; see [`Request::client_ip`].
    pub client_address: String,
    /// `client_name`: verified client host name, or `unknown`.
    pub client_name: String,
    /// `reverse_client_name`: unverified reverse DNS name, or `unknown`.
    pub reverse_client_name: String,
    /// `instance`: the same for all requests about one message on one connection.
    pub instance: String,
    /// `sasl_method`.
    pub sasl_method: String,
    /// `sasl_username`: empty when the client did not authenticate.
    pub sasl_username: String,
    /// `sasl_sender`.
    pub sasl_sender: String,
    /// `size`: message size in bytes, declared (MAIL FROM) or actual (END-OF-MESSAGE).
    pub size: Option<u64>,
    /// `ccert_subject`, still xtext-encoded ([`crate::decode_xtext`]).
    pub ccert_subject: String,
    /// `ccert_issuer`, still xtext-encoded ([`crate::decode_xtext`]).
    pub ccert_issuer: String,
    /// `ccert_fingerprint`.
    pub ccert_fingerprint: String,
    /// `encryption_protocol`: empty on plaintext connections.
    pub encryption_protocol: String,
    /// `encryption_cipher`: empty on plaintext connections.
    pub encryption_cipher: String,
    /// `encryption_keysize`: bits; 0 on plaintext connections.
    pub encryption_keysize: Option<u32>,
    /// `etrn_domain`.
    pub etrn_domain: String,
    /// `stress`: true when Postfix sent `yes`.
    pub stress: bool,
    /// `ccert_pubkey_fingerprint`.
    pub ccert_pubkey_fingerprint: String,
    /// `client_port`.
    pub client_port: Option<u16>,
    /// `policy_context`.
    pub policy_context: String,
    /// `server_address`: an IP address as text; see [`Request::server_ip`].
    pub server_address: String,
    /// `server_port`.
    pub server_port: Option<u16>,
    /// `compatibility_level`, as text (`3.6`, `major.minor.patch`, ...).
    pub compatibility_level: String,
    /// `mail_version`, as text.
    pub mail_version: String,
    /// Lines whose name is not a documented attribute (ignored, as the README requires).
    pub unknown_attributes: usize,
    /// Documented attributes sent again after their first occurrence.
    pub duplicate_attributes: usize,
    /// Typed attributes whose value did not parse (a non-number in `size`, `stress=maybe`);
    /// each is treated as absent. In wire order, each at most once.
    pub malformed: Vec<Attribute>,
    /// Attributes whose value was not UTF-8 and was decoded lossily (U+FFFD), under
    /// [`Utf8Policy::Lossy`]. In wire order, each at most once.
    pub lossy_utf8: Vec<Attribute>,
}

impl Request {
    /// The client IP address, if `client_address` holds one (not `unknown`).
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.client_address.parse().ok()
    }

    /// The server IP address, if `server_address` holds one.
    pub fn server_ip(&self) -> Option<IpAddr> {
        self.server_address.parse().ok()
    }

    /// Whether the client authenticated with SASL (`sasl_username` is not empty).
    pub fn is_authenticated(&self) -> bool {
        !self.sasl_username.is_empty()
    }

    fn note_malformed(&mut self, attr: Attribute, malformed: bool) {
        self.malformed.retain(|&a| a != attr);
        if malformed {
            self.malformed.push(attr);
        }
    }

    fn set_number<T: std::str::FromStr>(&mut self, attr: Attribute, value: &str) -> Option<T> {
        let (parsed, malformed) = match parse_number(value) {
            Number::Absent => (None, false),
            Number::Digits(digits) => match digits.parse() {
                Ok(n) => (Some(n), false),
                Err(_) => (None, true), // too large for the field
            },
            Number::Malformed => (None, true),
        };
        self.note_malformed(attr, malformed);
        parsed
    }

    fn set(&mut self, attr: Attribute, value: Cow<'_, str>) {
        let text = || value.as_ref().to_owned();
        match attr {
            Attribute::Request => self.request = RequestType::parse(&value),
            Attribute::ProtocolState => {
                self.protocol_state = (!value.is_empty()).then(|| ProtocolState::parse(&value))
            }
            Attribute::ProtocolName => {
                self.protocol_name = (!value.is_empty()).then(|| ProtocolName::parse(&value))
            }
            Attribute::HeloName => self.helo_name = text(),
            Attribute::QueueId => self.queue_id = text(),
            Attribute::Sender => self.sender = text(),
            Attribute::Recipient => self.recipient = text(),
            Attribute::RecipientCount => self.recipient_count = self.set_number(attr, &value),
            Attribute::ClientAddress => self.client_address = text(),
            Attribute::ClientName => self.client_name = text(),
            Attribute::ReverseClientName => self.reverse_client_name = text(),
            Attribute::Instance => self.instance = text(),
            Attribute::SaslMethod => self.sasl_method = text(),
            Attribute::SaslUsername => self.sasl_username = text(),
            Attribute::SaslSender => self.sasl_sender = text(),
            Attribute::Size => self.size = self.set_number(attr, &value),
            Attribute::CcertSubject => self.ccert_subject = text(),
            Attribute::CcertIssuer => self.ccert_issuer = text(),
            Attribute::CcertFingerprint => self.ccert_fingerprint = text(),
            Attribute::EncryptionProtocol => self.encryption_protocol = text(),
            Attribute::EncryptionCipher => self.encryption_cipher = text(),
            Attribute::EncryptionKeysize => self.encryption_keysize = self.set_number(attr, &value),
            Attribute::EtrnDomain => self.etrn_domain = text(),
            Attribute::Stress => {
                let yes = value.eq_ignore_ascii_case("yes");
                let known = yes || value.is_empty() || value.eq_ignore_ascii_case("no");
                self.note_malformed(attr, !known);
                self.stress = yes;
            }
            Attribute::CcertPubkeyFingerprint => self.ccert_pubkey_fingerprint = text(),
            Attribute::ClientPort => self.client_port = self.set_number(attr, &value),
            Attribute::PolicyContext => self.policy_context = text(),
            Attribute::ServerAddress => self.server_address = text(),
            Attribute::ServerPort => self.server_port = self.set_number(attr, &value),
            Attribute::CompatibilityLevel => self.compatibility_level = text(),
            Attribute::MailVersion => self.mail_version = text(),
        }
    }
}

enum Number<'a> {
    Absent,
    Digits(&'a str),
    Malformed,
}

/// Plain ASCII decimal digits only (no sign, no spaces), or empty / `unknown` for absent.
/// Digits that overflow the field's type are malformed too (see `set_number`).
fn parse_number(value: &str) -> Number<'_> {
    if value.is_empty() || value == "unknown" {
        Number::Absent
    } else if value.bytes().all(|b| b.is_ascii_digit()) {
        Number::Digits(value)
    } else {
        Number::Malformed
    }
}

/// Parses exactly one request (its `name=value` lines and the empty line that ends it) with the
/// default [`Limits`]. See [`parse_request_with`].
pub fn parse_request(input: &[u8]) -> Result<Request, ParseError> {
    parse_request_with(input, &Limits::default())
}

/// Parses exactly one request under `limits`.
///
/// `input` must hold one whole request and nothing more: a missing final empty line is
/// [`ParseError::UnexpectedEof`], bytes after it are [`ParseError::TrailingData`]. Lines end in
/// `\n`; a `\r` before it is dropped, so `\r\n` (from a hand-typed test session) works too.
/// Limits are checked in wire order, exactly as [`crate::RequestReader`] checks them.
pub fn parse_request_with(input: &[u8], limits: &Limits) -> Result<Request, ParseError> {
    let mut framer = Framer::new(*limits);
    let (taken, complete) = framer.push(input)?;
    if !complete {
        return Err(ParseError::UnexpectedEof { bytes: input.len() });
    }
    if taken < input.len() {
        return Err(ParseError::TrailingData {
            bytes: input.len() - taken,
        });
    }
    parse_framed(framer.request_bytes(), limits)
}

/// Builds a [`Request`] from bytes the [`Framer`] accepted: lines ending in `\n`, the last one
/// empty.
pub(crate) fn parse_framed(raw: &[u8], limits: &Limits) -> Result<Request, ParseError> {
    let mut request = Request::default();
    let mut seen: u64 = 0;
    for (index, line) in raw.split(|&b| b == b'\n').enumerate() {
        let line_no = index + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.contains(&0) {
            return Err(ParseError::NulByte { line: line_no });
        }
        let Some(eq) = line.iter().position(|&b| b == b'=') else {
            return Err(ParseError::MissingEquals { line: line_no });
        };
        if eq == 0 {
            return Err(ParseError::EmptyName { line: line_no });
        }
        if limits.invalid_utf8 == Utf8Policy::Reject && std::str::from_utf8(line).is_err() {
            return Err(ParseError::InvalidUtf8 { line: line_no });
        }
        let (name, value) = (&line[..eq], &line[eq + 1..]);
        let Some(attr) = Attribute::from_name(name) else {
            request.unknown_attributes += 1;
            continue;
        };
        let bit = 1u64 << attr.index();
        if seen & bit != 0 {
            request.duplicate_attributes += 1;
        }
        seen |= bit;
        let value = String::from_utf8_lossy(value);
        request.lossy_utf8.retain(|&a| a != attr);
        if matches!(value, Cow::Owned(_)) {
            request.lossy_utf8.push(attr);
        }
        request.set(attr, value);
    }
    let has_request = seen & (1u64 << Attribute::Request.index()) != 0;
    if !has_request || request.request.as_str().is_empty() {
        return Err(ParseError::MissingRequestType);
    }
    Ok(request)
}
