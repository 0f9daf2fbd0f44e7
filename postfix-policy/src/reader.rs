//! Reads requests, one at a time, from a policy connection.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::framer::Framer;
use crate::request::parse_framed;
use crate::{Limits, ParseError, ReadError, Request};

/// Reads one policy request at a time from a connection that carries many (Postfix reuses a
/// policy connection for up to `smtpd_policy_service_max_ttl`).
///
/// Limits are enforced as bytes arrive: a line, an attribute count or a request that breaks a
/// [`Limits`] bound fails as soon as the bytes prove it, and nothing beyond the limit is ever
/// buffered. After any error the connection is out of step with the peer: answer nothing, log,
/// and close it (the protocol's rule for trouble).
///
/// [`RequestReader::read_request`] is cancel-safe: if its future is dropped (a timeout), the
/// bytes already taken stay buffered here and the next call carries on with the same request.
///
/// ```no_run
/// # async fn demo(stream: tokio::net::TcpStream) -> Result<(), Box<dyn std::error::Error>> {
/// use quench_postfix_policy::{Action, RequestReader, write_response};
///
/// let (read, mut write) = stream.into_split();
/// let mut requests = RequestReader::new(tokio::io::BufReader::new(read));
/// while let Some(request) = requests.read_request().await? {
///     let action = if request.is_authenticated() { Action::dunno() } else { Action::ok() };
///     write_response(&mut write, &action).await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RequestReader<R> {
    inner: R,
    framer: Framer,
}

impl<R: AsyncBufRead + Unpin> RequestReader<R> {
    /// A reader with the default [`Limits`].
    pub fn new(inner: R) -> Self {
        Self::with_limits(inner, Limits::default())
    }

    /// A reader with the given limits.
    pub fn with_limits(inner: R, limits: Limits) -> Self {
        Self {
            inner,
            framer: Framer::new(limits),
        }
    }

    /// Reads the next request.
    ///
    /// `Ok(None)` when the peer closed the connection cleanly between requests;
    /// [`ParseError::UnexpectedEof`] when it closed mid-request. Never returns part of a
    /// request.
    pub async fn read_request(&mut self) -> Result<Option<Request>, ReadError> {
        loop {
            let chunk = self.inner.fill_buf().await?;
            if chunk.is_empty() {
                return match self.framer.buffered() {
                    0 => Ok(None),
                    bytes => {
                        self.framer.reset();
                        Err(ParseError::UnexpectedEof { bytes }.into())
                    }
                };
            }
            let pushed = self.framer.push(chunk);
            let (taken, complete) = match pushed {
                Ok(progress) => progress,
                Err(e) => {
                    self.framer.reset();
                    return Err(e.into());
                }
            };
            self.inner.consume(taken);
            if complete {
                let parsed = parse_framed(self.framer.request_bytes(), self.framer.limits());
                self.framer.reset();
                return Ok(Some(parsed?));
            }
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        self.framer.limits()
    }

    /// Bytes of an unfinished request held so far (0 between requests).
    pub fn buffered(&self) -> usize {
        self.framer.buffered()
    }

    /// The underlying reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The underlying reader, mutably. Reading from it directly desynchronises this reader.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The underlying reader; any unfinished request is dropped.
    pub fn into_inner(self) -> R {
        self.inner
    }
}
