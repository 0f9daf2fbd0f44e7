//! Finds where one request ends, enforcing the size limits byte by byte.
//!
//! Both the async reader and [`crate::parse_request`] feed bytes through the same [`Framer`], so
//! the network path and the fuzzed path apply the limits identically, whatever the chunking.

use crate::{Limits, ParseError};

/// Accumulates one request's bytes until the empty line that ends it.
#[derive(Debug)]
pub(crate) struct Framer {
    limits: Limits,
    /// The request so far: complete lines, each with its `\n`, then the current partial line.
    buf: Vec<u8>,
    /// Where the current (unfinished) line starts in `buf`.
    line_start: usize,
    /// Complete non-empty lines so far.
    lines: usize,
}

impl Framer {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            buf: Vec::new(),
            line_start: 0,
            lines: 0,
        }
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Bytes of the unfinished request buffered so far.
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The complete request, valid after [`Framer::push`] reported completion.
    pub(crate) fn request_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Forgets the buffered request, keeping the allocation for the next one.
    pub(crate) fn reset(&mut self) {
        self.buf.clear();
        self.line_start = 0;
        self.lines = 0;
    }

    /// Takes bytes from `input` up to and including the empty line that ends the request.
    ///
    /// Returns how many bytes were taken and whether the request is now complete; bytes after
    /// the end are not taken. Nothing is buffered past a limit: the error comes as soon as the
    /// bytes seen prove the limit broken.
    pub(crate) fn push(&mut self, input: &[u8]) -> Result<(usize, bool), ParseError> {
        let mut taken = 0;
        while taken < input.len() {
            let rest = &input[taken..];
            let (segment, ends_line) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..=i], true),
                None => (rest, false),
            };
            let content = segment.len() - usize::from(ends_line);
            // Where in `segment` each limit is first broken, if it is. The earlier byte decides
            // which error is reported, so the answer never depends on how reads were split.
            // (Both subtractions hold: earlier segments passed these same checks.)
            let line_len = self.buf.len() - self.line_start;
            let line_broken = (line_len + content > self.limits.max_line_bytes)
                .then(|| self.limits.max_line_bytes - line_len);
            let size_broken = (self.buf.len() + segment.len() > self.limits.max_request_bytes)
                .then(|| self.limits.max_request_bytes - self.buf.len());
            match (line_broken, size_broken) {
                (Some(line_at), Some(size_at)) if size_at < line_at => {
                    return Err(self.too_large());
                }
                (Some(_), _) => {
                    return Err(ParseError::LineTooLong {
                        line: self.lines + 1,
                        limit: self.limits.max_line_bytes,
                    });
                }
                (None, Some(_)) => return Err(self.too_large()),
                (None, None) => {}
            }
            self.buf.extend_from_slice(segment);
            taken += segment.len();
            if ends_line {
                let line = &self.buf[self.line_start..self.buf.len() - 1];
                let empty = line.is_empty() || line == b"\r";
                self.line_start = self.buf.len();
                if empty {
                    return Ok((taken, true));
                }
                self.lines += 1;
                if self.lines > self.limits.max_attributes {
                    return Err(ParseError::TooManyAttributes {
                        limit: self.limits.max_attributes,
                    });
                }
            }
        }
        Ok((taken, false))
    }

    fn too_large(&self) -> ParseError {
        ParseError::RequestTooLarge {
            limit: self.limits.max_request_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(line: usize, attrs: usize, total: usize) -> Limits {
        Limits {
            max_line_bytes: line,
            max_attributes: attrs,
            max_request_bytes: total,
            ..Limits::default()
        }
    }

    #[test]
    fn stops_at_empty_line_and_leaves_the_rest() {
        let mut f = Framer::new(Limits::default());
        assert_eq!(f.push(b"a=1\n\nb=2\n\n"), Ok((5, true)));
        assert_eq!(f.request_bytes(), b"a=1\n\n");
    }

    #[test]
    fn crlf_empty_line_ends_request() {
        let mut f = Framer::new(Limits::default());
        assert_eq!(f.push(b"a=1\r\n\r\nrest"), Ok((7, true)));
    }

    #[test]
    fn byte_at_a_time_equals_whole() {
        let input = b"request=smtpd_access_policy\nsender=a@b\n\n";
        let mut f = Framer::new(Limits::default());
        for (i, b) in input.iter().enumerate() {
            let (n, done) = f.push(std::slice::from_ref(b)).unwrap();
            assert_eq!(n, 1);
            assert_eq!(done, i == input.len() - 1);
        }
        assert_eq!(f.request_bytes(), input);
    }

    #[test]
    fn line_limit_is_exact_and_excludes_newline() {
        let mut f = Framer::new(limits(5, 10, 100));
        assert_eq!(f.push(b"ab=cd\n\n"), Ok((7, true)));
        let mut f = Framer::new(limits(5, 10, 100));
        assert_eq!(
            f.push(b"ab=cde"),
            Err(ParseError::LineTooLong { line: 1, limit: 5 })
        );
        // Detected before the newline arrives, across chunks.
        let mut f = Framer::new(limits(5, 10, 100));
        assert_eq!(f.push(b"x=1\nab="), Ok((7, false)));
        assert_eq!(
            f.push(b"cde"),
            Err(ParseError::LineTooLong { line: 2, limit: 5 })
        );
    }

    /// Found by the fuzzer: a line that breaks both limits reports whichever it breaks first,
    /// in byte order, however the input is chunked.
    #[test]
    fn first_broken_limit_wins_whatever_the_chunking() {
        let input = b"a=1234567890\nb=1234567890123456789";
        let run = |chunk: usize| {
            let mut f = Framer::new(limits(20, 10, 25));
            for piece in input.chunks(chunk) {
                f.push(piece)?;
            }
            Ok(())
        };
        // Byte 26 (the 26th) breaks max_request_bytes; line 2 breaks max_line_bytes later.
        for chunk in 1..=input.len() {
            assert_eq!(
                run(chunk),
                Err(ParseError::RequestTooLarge { limit: 25 }),
                "{chunk}"
            );
        }
        let input = b"a=1\nb=12345678901234567890123";
        let run = |chunk: usize| {
            let mut f = Framer::new(limits(20, 10, 25));
            for piece in input.chunks(chunk) {
                f.push(piece)?;
            }
            Ok(())
        };
        for chunk in 1..=input.len() {
            assert_eq!(
                run(chunk),
                Err(ParseError::LineTooLong { line: 2, limit: 20 }),
                "{chunk}"
            );
        }
    }

    #[test]
    fn attribute_and_size_limits() {
        let mut f = Framer::new(limits(100, 2, 100));
        assert_eq!(
            f.push(b"a=1\nb=2\nc=3\n"),
            Err(ParseError::TooManyAttributes { limit: 2 })
        );
        let mut f = Framer::new(limits(100, 100, 8));
        assert_eq!(
            f.push(b"a=1\nb=2\n\n"),
            Err(ParseError::RequestTooLarge { limit: 8 })
        );
        let mut f = Framer::new(limits(100, 100, 9));
        assert_eq!(f.push(b"a=1\nb=2\n\n"), Ok((9, true)));
    }
}
