//! Table-driven tests of the synchronous parser: every attribute, and every malformed case.

use quench_postfix_policy::{
    Attribute, DEFAULT_MAX_ATTRIBUTES, DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_REQUEST_BYTES, Limits,
    ParseError, ProtocolName, ProtocolState, Request, RequestType, Utf8Policy, parse_request,
    parse_request_with,
};

/// The README's full example (Postfix 3.8 and later), in README order.
const FULL: &str = "request=smtpd_access_policy
protocol_state=RCPT
protocol_name=SMTP
helo_name=some.domain.tld
queue_id=8045F2AB23
sender=foo@bar.tld
recipient=bar@foo.tld
recipient_count=0
client_address=1.2.3.4
client_name=another.domain.tld
reverse_client_name=another.domain.tld
instance=123.456.7
sasl_method=plain
sasl_username=you
sasl_sender=
size=12345
ccert_subject=solaris9.porcupine.org
ccert_issuer=Wietse+20Venema
ccert_fingerprint=C2:9D:F4:87:71:73:73:D9:18:E7:C2:F3:C1:DA:6E:04
encryption_protocol=TLSv1/SSLv3
encryption_cipher=DHE-RSA-AES256-SHA
encryption_keysize=256
etrn_domain=
stress=
ccert_pubkey_fingerprint=68:B3:29:DA:98:93:E3:40:99:C7:D8:AD:5C:B9:C9:40
client_port=1234
policy_context=submission
server_address=10.3.2.1
server_port=54321
compatibility_level=major.minor.patch
mail_version=3.8.0

";

fn req(lines: &[&str]) -> Vec<u8> {
    let mut out = String::from("request=smtpd_access_policy\n");
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out.into_bytes()
}

#[test]
fn full_readme_request() {
    let r = parse_request(FULL.as_bytes()).unwrap();
    let expected = Request {
        request: RequestType::SmtpdAccessPolicy,
        protocol_state: Some(ProtocolState::Rcpt),
        protocol_name: Some(ProtocolName::Smtp),
        helo_name: "some.domain.tld".into(),
        queue_id: "8045F2AB23".into(),
        sender: "foo@bar.tld".into(),
        recipient: "bar@foo.tld".into(),
        recipient_count: Some(0),
        client_address: "1.2.3.4".into(),
        client_name: "another.domain.tld".into(),
        reverse_client_name: "another.domain.tld".into(),
        instance: "123.456.7".into(),
        sasl_method: "plain".into(),
        sasl_username: "you".into(),
        sasl_sender: String::new(),
        size: Some(12345),
        ccert_subject: "solaris9.porcupine.org".into(),
        ccert_issuer: "Wietse+20Venema".into(),
        ccert_fingerprint: "C2:9D:F4:87:71:73:73:D9:18:E7:C2:F3:C1:DA:6E:04".into(),
        encryption_protocol: "TLSv1/SSLv3".into(),
        encryption_cipher: "DHE-RSA-AES256-SHA".into(),
        encryption_keysize: Some(256),
        etrn_domain: String::new(),
        stress: false,
        ccert_pubkey_fingerprint: "68:B3:29:DA:98:93:E3:40:99:C7:D8:AD:5C:B9:C9:40".into(),
        client_port: Some(1234),
        policy_context: "submission".into(),
        server_address: "10.3.2.1".into(),
        server_port: Some(54321),
        compatibility_level: "major.minor.patch".into(),
        mail_version: "3.8.0".into(),
        unknown_attributes: 0,
        duplicate_attributes: 0,
        malformed: vec![],
        lossy_utf8: vec![],
    };
    assert_eq!(r, expected);
    assert_eq!(r.client_ip(), Some("1.2.3.4".parse().unwrap()));
    assert_eq!(r.server_ip(), Some("10.3.2.1".parse().unwrap()));
    assert!(r.is_authenticated());
    // Every documented attribute appears in the example, each once.
    let names: Vec<&str> = FULL
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(n, _)| n)
        .collect();
    let documented: Vec<&str> = Attribute::ALL.iter().map(|a| a.name()).collect();
    assert_eq!(names, documented);
}

#[test]
fn valid_requests() {
    type Check = fn(&Request);
    let cases: &[(&str, Vec<u8>, Check)] = &[
        ("only the request attribute", req(&[]), |r| {
            assert_eq!(r, &Request::default());
        }),
        (
            "empty values",
            req(&["sender=", "sasl_username=", "size=", "client_port="]),
            |r| {
                assert_eq!(r.sender, "");
                assert!(!r.is_authenticated());
                assert_eq!((r.size, r.client_port), (None, None));
                assert!(r.malformed.is_empty());
            },
        ),
        (
            "value containing '='",
            req(&["sender=a=b@c", "policy_context=k=v=w"]),
            |r| {
                assert_eq!(r.sender, "a=b@c");
                assert_eq!(r.policy_context, "k=v=w");
            },
        ),
        (
            "unknown attributes are ignored but counted",
            req(&["x=1", "Sender=nope", "y="]),
            |r| {
                assert_eq!(r.unknown_attributes, 3);
                assert_eq!(r.sender, "");
            },
        ),
        (
            "duplicates: last wins, counted",
            req(&["sender=a@x", "sender=b@x", "sender=c@x"]),
            |r| {
                assert_eq!(r.sender, "c@x");
                assert_eq!(r.duplicate_attributes, 2);
            },
        ),
        (
            "CRLF line endings",
            b"request=smtpd_access_policy\r\nsender=a@b\r\n\r\n".to_vec(),
            |r| {
                assert_eq!(r.sender, "a@b");
            },
        ),
        (
            "other request type",
            b"request=something_else\n\n".to_vec(),
            |r| {
                assert_eq!(r.request, RequestType::Other("something_else".into()));
            },
        ),
        (
            "attribute order does not matter",
            b"sender=a@b\nrequest=smtpd_access_policy\n\n".to_vec(),
            |r| assert_eq!(r.sender, "a@b"),
        ),
        (
            "states and names",
            req(&["protocol_state=END-OF-MESSAGE", "protocol_name=ESMTP"]),
            |r| {
                assert_eq!(r.protocol_state, Some(ProtocolState::EndOfMessage));
                assert_eq!(r.protocol_name, Some(ProtocolName::Esmtp));
            },
        ),
        (
            "empty state is None",
            req(&["protocol_state=", "protocol_name="]),
            |r| {
                assert_eq!((&r.protocol_state, &r.protocol_name), (&None, &None));
            },
        ),
        ("unknown state kept", req(&["protocol_state=BDAT"]), |r| {
            assert_eq!(r.protocol_state, Some(ProtocolState::Other("BDAT".into())));
        }),
        ("stress=yes", req(&["stress=yes"]), |r| assert!(r.stress)),
        (
            "IPv6 and unknown client",
            req(&["client_address=2001:db8::1", "client_port=unknown"]),
            |r| {
                assert_eq!(r.client_ip(), Some("2001:db8::1".parse().unwrap()));
                assert_eq!(r.client_port, None);
                assert!(r.malformed.is_empty());
            },
        ),
        (
            "client_address=unknown",
            req(&["client_address=unknown"]),
            |r| {
                assert_eq!(r.client_address, "unknown");
                assert_eq!(r.client_ip(), None);
            },
        ),
        ("large size", req(&["size=18446744073709551615"]), |r| {
            assert_eq!(r.size, Some(u64::MAX));
        }),
        ("leading zeros", req(&["server_port=00025"]), |r| {
            assert_eq!(r.server_port, Some(25))
        }),
        (
            "UTF-8 address (SMTPUTF8)",
            req(&["sender=jöran@bücher.example"]),
            |r| {
                assert_eq!(r.sender, "jöran@bücher.example");
                assert!(r.lossy_utf8.is_empty());
            },
        ),
        ("trailing whitespace is value", req(&["sender=a@b "]), |r| {
            assert_eq!(r.sender, "a@b ")
        }),
    ];
    for (name, input, check) in cases {
        let r = parse_request(input).unwrap_or_else(|e| panic!("{name}: {e}"));
        check(&r);
    }
}

#[test]
fn malformed_numbers_are_none_and_listed() {
    let cases: &[(&str, Attribute)] = &[
        ("size=12k", Attribute::Size),
        ("size=-1", Attribute::Size),
        ("size=+1", Attribute::Size),
        ("size= 1", Attribute::Size),
        ("size=99999999999999999999", Attribute::Size),
        ("client_port=65536", Attribute::ClientPort),
        ("server_port=0x19", Attribute::ServerPort),
        ("recipient_count=1.5", Attribute::RecipientCount),
        ("encryption_keysize=lots", Attribute::EncryptionKeysize),
        ("stress=maybe", Attribute::Stress),
    ];
    for (line, attr) in cases {
        let r = parse_request(&req(&[line])).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(r.malformed, vec![*attr], "{line}");
        assert_eq!(
            (r.size, r.client_port, r.server_port),
            (None, None, None),
            "{line}"
        );
        assert_eq!(
            (r.recipient_count, r.encryption_keysize, r.stress),
            (None, None, false)
        );
    }
    // A later good value clears the mark; a later bad one sets it.
    let r = parse_request(&req(&["size=x", "size=7"])).unwrap();
    assert_eq!((r.size, r.malformed.len()), (Some(7), 0));
    let r = parse_request(&req(&["size=7", "size=x"])).unwrap();
    assert_eq!((r.size, r.malformed), (None, vec![Attribute::Size]));
}

#[test]
fn invalid_utf8_lossy_by_default_reject_on_request() {
    let input = b"request=smtpd_access_policy\nsender=caf\xe9@x\nx-unknown=\xff\n\n";
    let r = parse_request(input).unwrap();
    assert_eq!(r.sender, "caf\u{FFFD}@x");
    assert_eq!(r.lossy_utf8, vec![Attribute::Sender]);
    assert_eq!(r.unknown_attributes, 1);

    let strict = Limits {
        invalid_utf8: Utf8Policy::Reject,
        ..Limits::default()
    };
    assert_eq!(
        parse_request_with(input, &strict),
        Err(ParseError::InvalidUtf8 { line: 2 })
    );
    let unknown_only = b"request=smtpd_access_policy\nx-unknown=\xff\n\n";
    assert_eq!(
        parse_request_with(unknown_only, &strict),
        Err(ParseError::InvalidUtf8 { line: 2 })
    );
    assert!(parse_request_with(FULL.as_bytes(), &strict).is_ok());
}

#[test]
fn malformed_requests() {
    let long_value = format!("sender={}", "a".repeat(DEFAULT_MAX_LINE_BYTES));
    let flood: Vec<String> = (0..DEFAULT_MAX_ATTRIBUTES)
        .map(|i| format!("x{i}=1"))
        .collect();
    let flood: Vec<&str> = flood.iter().map(String::as_str).collect();
    let big: Vec<String> = (0..DEFAULT_MAX_REQUEST_BYTES / 4000 + 1)
        .map(|i| format!("x{i}={}", "v".repeat(3990)))
        .collect();
    let big: Vec<&str> = big.iter().map(String::as_str).collect();

    let cases: Vec<(&str, Vec<u8>, ParseError)> = vec![
        (
            "no '='",
            req(&["sender"]),
            ParseError::MissingEquals { line: 2 },
        ),
        (
            "no '=' first line",
            b"hello\n\n".to_vec(),
            ParseError::MissingEquals { line: 1 },
        ),
        (
            "empty name",
            req(&["=value"]),
            ParseError::EmptyName { line: 2 },
        ),
        (
            "NUL in value",
            req(&["sender=a\0b"]),
            ParseError::NulByte { line: 2 },
        ),
        (
            "NUL in name",
            req(&["sen\0der=a"]),
            ParseError::NulByte { line: 2 },
        ),
        (
            "oversize line",
            req(&[&long_value]),
            ParseError::LineTooLong {
                line: 2,
                limit: DEFAULT_MAX_LINE_BYTES,
            },
        ),
        (
            "flood of attributes",
            req(&flood),
            ParseError::TooManyAttributes {
                limit: DEFAULT_MAX_ATTRIBUTES,
            },
        ),
        (
            "request too large",
            req(&big),
            ParseError::RequestTooLarge {
                limit: DEFAULT_MAX_REQUEST_BYTES,
            },
        ),
        (
            "missing request attribute",
            b"sender=a@b\n\n".to_vec(),
            ParseError::MissingRequestType,
        ),
        (
            "empty request attribute",
            b"request=\n\n".to_vec(),
            ParseError::MissingRequestType,
        ),
        (
            "just an empty line",
            b"\n".to_vec(),
            ParseError::MissingRequestType,
        ),
        (
            "empty input",
            b"".to_vec(),
            ParseError::UnexpectedEof { bytes: 0 },
        ),
        (
            "EOF mid-request (no empty line)",
            b"request=smtpd_access_policy\n".to_vec(),
            ParseError::UnexpectedEof { bytes: 28 },
        ),
        (
            "EOF mid-line",
            b"request=smtpd_access_policy\nsend".to_vec(),
            ParseError::UnexpectedEof { bytes: 32 },
        ),
        (
            "two requests",
            [req(&[]), req(&[])].concat(),
            ParseError::TrailingData { bytes: 29 },
        ),
    ];
    for (name, input, expected) in cases {
        assert_eq!(parse_request(&input), Err(expected), "{name}");
    }
}

#[test]
fn limits_are_exact() {
    // A line of exactly max_line_bytes passes; one more byte fails.
    let limits = Limits {
        max_line_bytes: 40,
        ..Limits::default()
    };
    let at = format!("sender={}", "a".repeat(33));
    assert_eq!(at.len(), 40);
    assert!(parse_request_with(&req(&[&at]), &limits).is_ok());
    let over = format!("{at}a");
    assert_eq!(
        parse_request_with(&req(&[&over]), &limits),
        Err(ParseError::LineTooLong { line: 2, limit: 40 })
    );
    // max_attributes counts the request line too.
    let limits = Limits {
        max_attributes: 3,
        ..Limits::default()
    };
    assert!(parse_request_with(&req(&["a=1", "b=2"]), &limits).is_ok());
    assert_eq!(
        parse_request_with(&req(&["a=1", "b=2", "c=3"]), &limits),
        Err(ParseError::TooManyAttributes { limit: 3 })
    );
    // max_request_bytes counts the final empty line.
    let input = req(&["a=1"]);
    let exact = Limits {
        max_request_bytes: input.len(),
        ..Limits::default()
    };
    assert!(parse_request_with(&input, &exact).is_ok());
    let short = Limits {
        max_request_bytes: input.len() - 1,
        ..Limits::default()
    };
    assert_eq!(
        parse_request_with(&input, &short),
        Err(ParseError::RequestTooLarge {
            limit: input.len() - 1
        })
    );
}

#[test]
fn error_kinds_are_stable_labels() {
    assert_eq!(
        ParseError::MissingEquals { line: 1 }.kind(),
        "missing_equals"
    );
    assert_eq!(
        ParseError::UnexpectedEof { bytes: 1 }.kind(),
        "unexpected_eof"
    );
    assert_eq!(
        ParseError::LineTooLong { line: 3, limit: 9 }.to_string(),
        "line 3: longer than 9 bytes"
    );
}
