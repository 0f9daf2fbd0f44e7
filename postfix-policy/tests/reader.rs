//! The async reader: connection reuse, EOF handling and limits over in-memory pipes and real
//! loopback sockets.

use std::time::Duration;

use quench_postfix_policy::{
    Action, DEFAULT_MAX_ATTRIBUTES, DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_REQUEST_BYTES, Limits,
    ParseError, ReadError, RequestReader, parse_request, write_response,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, duplex};
use tokio::net::{TcpListener, TcpStream};

fn request(sender: &str) -> Vec<u8> {
    format!(
        "request=smtpd_access_policy\nprotocol_state=RCPT\nsasl_username=alice\n\
         sender={sender}\nrecipient=bob@fabrikam.com\ninstance=1.2.3\n\n"
    )
    .into_bytes()
}

fn protocol_error(result: Result<Option<quench_postfix_policy::Request>, ReadError>) -> ParseError {
    match result {
        Err(ReadError::Protocol(e)) => e,
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[tokio::test]
async fn many_requests_on_one_connection_then_clean_eof() {
    let input: Vec<u8> = (0..50)
        .flat_map(|i| request(&format!("u{i}@contoso.com")))
        .collect();
    // Tiny BufReader capacity: requests straddle many fill_buf chunks.
    for capacity in [1, 7, 64, 8192] {
        let mut reader = RequestReader::new(BufReader::with_capacity(capacity, &input[..]));
        for i in 0..50 {
            let r = reader.read_request().await.unwrap().expect("a request");
            assert_eq!(r.sender, format!("u{i}@contoso.com"));
            assert_eq!(reader.buffered(), 0);
        }
        assert!(reader.read_request().await.unwrap().is_none());
        assert!(
            reader.read_request().await.unwrap().is_none(),
            "EOF is sticky"
        );
    }
}

#[tokio::test]
async fn reader_agrees_with_parse_request() {
    let one = request("a@b");
    let mut reader = RequestReader::new(&one[..]);
    let got = reader.read_request().await.unwrap().unwrap();
    assert_eq!(got, parse_request(&one).unwrap());
}

#[tokio::test]
async fn eof_mid_request_is_an_error_never_a_half_answer() {
    let whole = request("a@b");
    for cut in 1..whole.len() {
        let mut reader = RequestReader::new(&whole[..cut]);
        let err = protocol_error(reader.read_request().await);
        assert_eq!(
            err,
            ParseError::UnexpectedEof { bytes: cut },
            "cut at {cut}"
        );
    }
    // After one good request, a truncated second one.
    let mut input = request("a@b");
    input.extend_from_slice(b"request=smtpd_access_policy\nsender=x");
    let mut reader = RequestReader::new(&input[..]);
    assert!(reader.read_request().await.unwrap().is_some());
    let err = protocol_error(reader.read_request().await);
    assert_eq!(err, ParseError::UnexpectedEof { bytes: 36 });
}

#[tokio::test]
async fn malformed_input_errors() {
    let long = format!(
        "request=smtpd_access_policy\nsender={}\n\n",
        "a".repeat(100_000)
    );
    let flood: String = (0..10_000).map(|i| format!("x{i}=1\n")).collect();
    let cases: Vec<(&str, Vec<u8>, ParseError)> = vec![
        (
            "no '='",
            b"request=smtpd_access_policy\nbogus\n\n".to_vec(),
            ParseError::MissingEquals { line: 2 },
        ),
        (
            "oversize line",
            long.into_bytes(),
            ParseError::LineTooLong {
                line: 2,
                limit: DEFAULT_MAX_LINE_BYTES,
            },
        ),
        (
            "flood of attributes",
            flood.into_bytes(),
            ParseError::TooManyAttributes {
                limit: DEFAULT_MAX_ATTRIBUTES,
            },
        ),
        (
            "request too large",
            (0..20)
                .flat_map(|i| format!("x{i}={}\n", "v".repeat(4000)).into_bytes())
                .collect(),
            ParseError::RequestTooLarge {
                limit: DEFAULT_MAX_REQUEST_BYTES,
            },
        ),
    ];
    for (name, input, expected) in cases {
        let mut reader = RequestReader::new(BufReader::with_capacity(512, &input[..]));
        assert_eq!(
            protocol_error(reader.read_request().await),
            expected,
            "{name}"
        );
    }
}

/// An endless line from the peer is refused after max_line_bytes, without reading (or
/// buffering) the rest.
#[tokio::test]
async fn endless_line_is_cut_off_while_reading() {
    let (mut client, server) = duplex(1024);
    let writer = tokio::spawn(async move {
        let chunk = vec![b'a'; 1024];
        let mut sent = 0usize;
        while client.write_all(&chunk).await.is_ok() {
            sent += chunk.len();
            if sent > 10_000_000 {
                break;
            }
        }
        sent
    });
    let limits = Limits {
        max_line_bytes: 2000,
        ..Limits::default()
    };
    let mut reader = RequestReader::with_limits(BufReader::new(server), limits);
    let err = protocol_error(reader.read_request().await);
    assert_eq!(
        err,
        ParseError::LineTooLong {
            line: 1,
            limit: 2000
        }
    );
    drop(reader); // closes the pipe; the writer stops
    let sent = tokio::time::timeout(Duration::from_secs(5), writer)
        .await
        .unwrap()
        .unwrap();
    assert!(
        sent < 20_000,
        "the reader stopped early; the writer sent {sent} bytes"
    );
}

/// A timeout around read_request loses nothing: the next call finishes the same request.
#[tokio::test]
async fn read_request_is_cancel_safe() {
    let (mut client, server) = duplex(4096);
    let mut reader = RequestReader::new(BufReader::new(server));
    let whole = request("slow@contoso.com");
    client.write_all(&whole[..40]).await.unwrap();
    let timed_out = tokio::time::timeout(Duration::from_millis(50), reader.read_request()).await;
    assert!(timed_out.is_err());
    assert_eq!(reader.buffered(), 40);
    client.write_all(&whole[40..]).await.unwrap();
    let r = reader.read_request().await.unwrap().unwrap();
    assert_eq!(r.sender, "slow@contoso.com");
}

/// A minimal policy loop over real loopback TCP: one connection, several requests, pipelined
/// writes, then a disconnect mid-request.
#[tokio::test]
async fn over_real_tcp() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut reader = RequestReader::new(BufReader::new(read));
        let mut answered = 0;
        loop {
            match reader.read_request().await {
                Ok(Some(r)) => {
                    let action = if r.sender.starts_with("bad") {
                        Action::smtp_reply(550, "5.1.8 Access denied, bad outbound sender").unwrap()
                    } else {
                        Action::dunno()
                    };
                    write_response(&mut write, &action).await.unwrap();
                    answered += 1;
                }
                Ok(None) => return (answered, None),
                Err(e) => return (answered, Some(e.kind())),
            }
        }
    });

    let mut client = TcpStream::connect(addr).await.unwrap();
    // One at a time.
    client
        .write_all(&request("good@contoso.com"))
        .await
        .unwrap();
    assert_eq!(read_response(&mut client).await, "action=DUNNO\n\n");
    client.write_all(&request("bad@contoso.com")).await.unwrap();
    assert_eq!(
        read_response(&mut client).await,
        "action=550 5.1.8 Access denied, bad outbound sender\n\n"
    );
    // Two in one write.
    client
        .write_all(&[request("a@x"), request("bad@x")].concat())
        .await
        .unwrap();
    assert_eq!(read_response(&mut client).await, "action=DUNNO\n\n");
    assert!(read_response(&mut client).await.starts_with("action=550 "));
    // Then disconnect mid-request: the server answers nothing and reports EOF.
    client
        .write_all(b"request=smtpd_access_policy\nsender=half")
        .await
        .unwrap();
    drop(client);
    let (answered, error) = server.await.unwrap();
    assert_eq!(answered, 4);
    assert_eq!(error, Some("unexpected_eof"));
}

/// Invalid UTF-8 over the wire is decoded lossily and the request is answered.
#[tokio::test]
async fn invalid_utf8_over_tcp_is_answered() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut reader = RequestReader::new(BufReader::new(stream));
        let r = reader.read_request().await.unwrap().unwrap();
        write_response(reader.get_mut().get_mut(), &Action::dunno())
            .await
            .unwrap();
        r
    });
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"request=smtpd_access_policy\nsender=caf\xe9@x\n\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut client).await, "action=DUNNO\n\n");
    let r = server.await.unwrap();
    assert_eq!(r.sender, "caf\u{FFFD}@x");
}

/// Reads until the response's empty line.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while !out.ends_with(b"\n\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .expect("response in time")
            .unwrap();
        assert_eq!(n, 1, "connection closed before a full response");
        out.push(byte[0]);
    }
    String::from_utf8(out).unwrap()
}
