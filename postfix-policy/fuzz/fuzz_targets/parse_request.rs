//! Arbitrary bytes into the request parser.
//!
//! Besides "never panics", checks that the async reader, fed the same bytes in chunks of a
//! fuzzer-chosen size, reaches exactly the same result as the synchronous `parse_request_with`
//! (the framer must not depend on where reads split), and that no action text can break out of
//! its response.
#![no_main]

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use quench_postfix_policy::{
    Action, Limits, MAX_ACTION_BYTES, ParseError, ReadError, Request, RequestReader, Utf8Policy,
    parse_request_with,
};
use tokio::io::{AsyncBufRead, AsyncRead, ReadBuf};

fuzz_target!(|input: &[u8]| {
    let [chunk, flags, data @ ..] = input else {
        return;
    };
    let chunk = usize::from(*chunk) + 1;
    let mut limits = if flags & 1 == 0 {
        Limits::default()
    } else {
        // Small limits, so short inputs reach every limit path.
        Limits {
            max_line_bytes: 24,
            max_attributes: 4,
            max_request_bytes: 80,
            ..Limits::default()
        }
    };
    if flags & 2 != 0 {
        limits.invalid_utf8 = Utf8Policy::Reject;
    }

    let sync = parse_request_with(data, &limits);
    if let Ok(request) = &sync {
        check_request(request);
    }

    let mut reader = RequestReader::with_limits(
        Chunked {
            data,
            pos: 0,
            chunk,
        },
        limits,
    );
    let first = poll_once(reader.read_request());
    match sync {
        Ok(request) => {
            assert_same(&first, &Ok(request));
            assert!(matches!(poll_once(reader.read_request()), Ok(None)));
        }
        Err(ParseError::TrailingData { bytes }) => {
            let head = &data[..data.len() - bytes];
            assert_same(&first, &parse_request_with(head, &limits));
        }
        Err(ParseError::UnexpectedEof { bytes: 0 }) => assert!(matches!(first, Ok(None))),
        Err(e) => assert_same(&first, &Err(e)),
    }

    if let Ok(action) = Action::raw(&String::from_utf8_lossy(data)) {
        let response = action.to_response();
        assert!(action.as_str().len() <= MAX_ACTION_BYTES);
        assert_eq!(response.matches('\n').count(), 2);
        assert!(response.ends_with("\n\n") && !response.contains(['\r', '\0']));
    }
});

fn check_request(r: &Request) {
    for text in [
        &r.sender,
        &r.recipient,
        &r.sasl_username,
        &r.helo_name,
        &r.instance,
    ] {
        assert!(!text.contains(['\n', '\0']));
    }
    assert!(!r.request.as_str().is_empty());
}

fn assert_same(got: &Result<Option<Request>, ReadError>, want: &Result<Request, ParseError>) {
    match (got, want) {
        (Ok(Some(g)), Ok(w)) => assert_eq!(g, w),
        (Err(ReadError::Protocol(g)), Err(w)) => assert_eq!(g, w),
        _ => panic!("reader {got:?} != parser {want:?}"),
    }
}

/// Polls a future that cannot pend (its reader is in memory) to completion.
fn poll_once<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("in-memory reader pended"),
    }
}

/// An in-memory AsyncBufRead that hands out at most `chunk` bytes per fill.
struct Chunked<'a> {
    data: &'a [u8],
    pos: usize,
    chunk: usize,
}

impl Chunked<'_> {
    fn available(&self) -> &[u8] {
        let end = self.data.len().min(self.pos + self.chunk);
        &self.data[self.pos..end]
    }
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.available().len().min(buf.remaining());
        let start = self.pos;
        buf.put_slice(&self.data[start..start + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncBufRead for Chunked<'_> {
    fn poll_fill_buf(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        Poll::Ready(Ok(self.get_mut().available()))
    }

    fn consume(mut self: Pin<&mut Self>, amt: usize) {
        self.pos += amt;
    }
}
