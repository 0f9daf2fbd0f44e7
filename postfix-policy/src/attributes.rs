//! The attribute names Postfix documents for a delegated SMTPD access policy request, and the
//! small value vocabularies some of them use.
//!
//! Source: Postfix `SMTPD_POLICY_README`, which lists every attribute with the Postfix version
//! that introduced it; the newest additions are `compatibility_level` and `mail_version`
//! (Postfix 3.8).

use std::fmt;

macro_rules! attributes {
    ($($(#[$doc:meta])* $variant:ident = $name:literal since $since:literal,)*) => {
        /// One documented attribute of a policy request.
        ///
        /// Names match exactly and case-sensitively (Postfix sends them in lower case); any other
        /// name is an unknown attribute, which the parser ignores but counts.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Attribute {
            $($(#[$doc])* $variant,)*
        }

        impl Attribute {
            /// Every documented attribute, in the order the README lists them.
            pub const ALL: &'static [Attribute] = &[$(Attribute::$variant,)*];

            /// The attribute's name on the wire.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Attribute::$variant => $name,)*
                }
            }

            /// The first Postfix version that sends this attribute.
            pub const fn since(self) -> &'static str {
                match self {
                    $(Attribute::$variant => $since,)*
                }
            }

            /// The attribute with this wire name, or `None` for an unknown name.
            pub fn from_name(name: &[u8]) -> Option<Attribute> {
                match name {
                    $(n if n == $name.as_bytes() => Some(Attribute::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

attributes! {
    /// The request type; required. Postfix's SMTP server sends `smtpd_access_policy`.
    Request = "request" since "2.1",
    /// The SMTP stage that asks: CONNECT, EHLO, HELO, MAIL, RCPT, DATA, END-OF-MESSAGE, VRFY, ETRN.
    ProtocolState = "protocol_state" since "2.1",
    /// SMTP or ESMTP.
    ProtocolName = "protocol_name" since "2.1",
    /// The HELO/EHLO argument.
    HeloName = "helo_name" since "2.1",
    /// The Postfix queue id; empty before the message has one.
    QueueId = "queue_id" since "2.1",
    /// The envelope sender (MAIL FROM), without angle brackets; empty for the null sender.
    Sender = "sender" since "2.1",
    /// The envelope recipient; at RCPT, or at DATA/END-OF-MESSAGE when there is exactly one.
    Recipient = "recipient" since "2.1",
    /// Accepted recipients; non-zero only at DATA and END-OF-MESSAGE.
    RecipientCount = "recipient_count" since "2.1",
    /// The remote client's IP address, or `unknown`.
    ClientAddress = "client_address" since "2.1",
    /// The verified client host name, or `unknown`.
    ClientName = "client_name" since "2.1",
    /// The client's reverse DNS name, unverified, or `unknown`.
    ReverseClientName = "reverse_client_name" since "2.1",
    /// Ties together the requests about one message delivery on one policy connection.
    Instance = "instance" since "2.1",
    /// The SASL mechanism, empty without SASL authentication.
    SaslMethod = "sasl_method" since "2.2",
    /// The SASL login name, empty without SASL authentication.
    SaslUsername = "sasl_username" since "2.2",
    /// The SASL sender (MAIL FROM ... AUTH=), usually empty.
    SaslSender = "sasl_sender" since "2.2",
    /// The message size: as declared in MAIL FROM, or actual at END-OF-MESSAGE.
    Size = "size" since "2.2",
    /// The client certificate subject CN, xtext-encoded.
    CcertSubject = "ccert_subject" since "2.2",
    /// The client certificate issuer CN, xtext-encoded.
    CcertIssuer = "ccert_issuer" since "2.2",
    /// The client certificate fingerprint.
    CcertFingerprint = "ccert_fingerprint" since "2.2",
    /// The TLS protocol, empty on plaintext connections.
    EncryptionProtocol = "encryption_protocol" since "2.3",
    /// The TLS cipher, empty on plaintext connections.
    EncryptionCipher = "encryption_cipher" since "2.3",
    /// The cipher key size in bits, 0 on plaintext connections.
    EncryptionKeysize = "encryption_keysize" since "2.3",
    /// The ETRN argument, only in the ETRN state.
    EtrnDomain = "etrn_domain" since "2.3",
    /// `yes` when Postfix is under stress, else empty.
    Stress = "stress" since "2.5",
    /// The client certificate public key fingerprint.
    CcertPubkeyFingerprint = "ccert_pubkey_fingerprint" since "2.9",
    /// The remote client's TCP port, or `unknown`.
    ClientPort = "client_port" since "3.0",
    /// Operator-set text from `smtpd_policy_service_policy_context`.
    PolicyContext = "policy_context" since "3.1",
    /// The local server IP address the client connected to.
    ServerAddress = "server_address" since "3.2",
    /// The local server TCP port the client connected to.
    ServerPort = "server_port" since "3.2",
    /// The Postfix `compatibility_level` setting.
    CompatibilityLevel = "compatibility_level" since "3.8",
    /// The Postfix version (`mail_version`).
    MailVersion = "mail_version" since "3.8",
}

impl Attribute {
    /// A small index (0..64) for bit sets.
    pub(crate) const fn index(self) -> u32 {
        self as u32
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The `request` attribute's value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RequestType {
    /// `smtpd_access_policy`: the only type the Postfix SMTP server sends.
    #[default]
    SmtpdAccessPolicy,
    /// Any other non-empty value, as sent.
    Other(String),
}

impl RequestType {
    pub(crate) fn parse(value: &str) -> Self {
        if value == "smtpd_access_policy" {
            RequestType::SmtpdAccessPolicy
        } else {
            RequestType::Other(value.to_owned())
        }
    }

    /// The value as sent.
    pub fn as_str(&self) -> &str {
        match self {
            RequestType::SmtpdAccessPolicy => "smtpd_access_policy",
            RequestType::Other(s) => s,
        }
    }
}

/// The `protocol_state` attribute: the SMTP stage at which Postfix asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolState {
    /// Connection established (`smtpd_client_restrictions`).
    Connect,
    /// EHLO command.
    Ehlo,
    /// HELO command.
    Helo,
    /// MAIL FROM command.
    Mail,
    /// RCPT TO command (also where `smtpd_sender_restrictions` run under `smtpd_delay_reject`).
    Rcpt,
    /// DATA command.
    Data,
    /// End of message data (`smtpd_end_of_data_restrictions`).
    EndOfMessage,
    /// VRFY command.
    Vrfy,
    /// ETRN command.
    Etrn,
    /// Any other value, as sent.
    Other(String),
}

impl ProtocolState {
    /// Matches the documented names case-insensitively.
    pub(crate) fn parse(value: &str) -> Self {
        const KNOWN: &[(&str, ProtocolState)] = &[
            ("CONNECT", ProtocolState::Connect),
            ("EHLO", ProtocolState::Ehlo),
            ("HELO", ProtocolState::Helo),
            ("MAIL", ProtocolState::Mail),
            ("RCPT", ProtocolState::Rcpt),
            ("DATA", ProtocolState::Data),
            ("END-OF-MESSAGE", ProtocolState::EndOfMessage),
            ("VRFY", ProtocolState::Vrfy),
            ("ETRN", ProtocolState::Etrn),
        ];
        KNOWN
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(value))
            .map(|(_, state)| state.clone())
            .unwrap_or_else(|| ProtocolState::Other(value.to_owned()))
    }

    /// The canonical (upper-case) name, or the value as sent for [`ProtocolState::Other`].
    pub fn as_str(&self) -> &str {
        match self {
            ProtocolState::Connect => "CONNECT",
            ProtocolState::Ehlo => "EHLO",
            ProtocolState::Helo => "HELO",
            ProtocolState::Mail => "MAIL",
            ProtocolState::Rcpt => "RCPT",
            ProtocolState::Data => "DATA",
            ProtocolState::EndOfMessage => "END-OF-MESSAGE",
            ProtocolState::Vrfy => "VRFY",
            ProtocolState::Etrn => "ETRN",
            ProtocolState::Other(s) => s,
        }
    }
}

/// The `protocol_name` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolName {
    /// The client greeted with HELO.
    Smtp,
    /// The client greeted with EHLO.
    Esmtp,
    /// Any other value, as sent.
    Other(String),
}

impl ProtocolName {
    /// Matches `SMTP` and `ESMTP` case-insensitively.
    pub(crate) fn parse(value: &str) -> Self {
        if value.eq_ignore_ascii_case("SMTP") {
            ProtocolName::Smtp
        } else if value.eq_ignore_ascii_case("ESMTP") {
            ProtocolName::Esmtp
        } else {
            ProtocolName::Other(value.to_owned())
        }
    }

    /// The canonical name, or the value as sent for [`ProtocolName::Other`].
    pub fn as_str(&self) -> &str {
        match self {
            ProtocolName::Smtp => "SMTP",
            ProtocolName::Esmtp => "ESMTP",
            ProtocolName::Other(s) => s,
        }
    }
}

/// Decodes xtext (RFC 3461 section 4), the encoding of the `ccert_*` attributes: `+XX` is the
/// byte with hex value `XX`. A `+` not followed by two hex digits is kept literally; decoded
/// bytes that are not UTF-8 become U+FFFD.
pub fn decode_xtext(value: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'+'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((hi << 4) | lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(Attribute::ALL.len(), 31);
        for &attr in Attribute::ALL {
            assert_eq!(Attribute::from_name(attr.name().as_bytes()), Some(attr));
            assert!(attr.index() < 64);
        }
        assert_eq!(Attribute::from_name(b"Sender"), None);
        assert_eq!(Attribute::from_name(b""), None);
    }

    #[test]
    fn xtext() {
        assert_eq!(decode_xtext("Wietse+20Venema"), "Wietse Venema");
        assert_eq!(decode_xtext("a+2Bb"), "a+b");
        assert_eq!(decode_xtext("trailing+"), "trailing+");
        assert_eq!(decode_xtext("bad+zz"), "bad+zz");
        assert_eq!(decode_xtext("caf+C3+A9"), "café");
        assert_eq!(decode_xtext("+FF"), "\u{FFFD}");
    }

    #[test]
    fn states() {
        assert_eq!(ProtocolState::parse("RCPT"), ProtocolState::Rcpt);
        assert_eq!(
            ProtocolState::parse("end-of-message"),
            ProtocolState::EndOfMessage
        );
        assert_eq!(
            ProtocolState::parse("BDAT"),
            ProtocolState::Other("BDAT".into())
        );
        assert_eq!(ProtocolName::parse("esmtp"), ProtocolName::Esmtp);
    }
}
