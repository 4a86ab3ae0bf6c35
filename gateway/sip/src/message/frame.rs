//! Message framing on stream transports (RFC 3261 §18.3) with RFC 5626 §3.5.1 CRLF
//! keep-alives.
//!
//! A message is the header section up to CRLFCRLF plus exactly Content-Length body
//! bytes; Content-Length is mandatory on streams. Between messages, `CRLFCRLF` is a
//! keep-alive "ping" that wants a single `CRLF` "pong"; a lone `CRLF` (a pong, or the
//! leading CRLF §7.5 tells us to ignore) is reported as `KeepAlive { pong_needed:
//! false }` so a client can refresh its liveness timer.
//!
//! Every error is fatal for the connection: after one, the byte stream can no longer be
//! trusted to be aligned on message boundaries. The caller closes the connection.

use bytes::{Bytes, BytesMut};

use super::headers::name_is;
use super::Limits;

/// One unit cut from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A whole message: headers, blank line, exactly Content-Length body bytes.
    Message(Bytes),
    /// CRLF keep-alive (RFC 5626 §3.5.1). `pong_needed` for a double-CRLF ping.
    KeepAlive { pong_needed: bool },
}

/// Fatal stream errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("header section exceeds {limit} bytes")]
    HeadersTooLarge { limit: usize },
    #[error("more than {limit} header lines")]
    TooManyHeaderLines { limit: usize },
    #[error("body of {size} bytes exceeds the limit of {limit}")]
    BodyTooLarge { size: usize, limit: usize },
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    MessageTooLarge { size: usize, limit: usize },
    #[error("message without Content-Length on a stream")]
    MissingContentLength,
    #[error("bad Content-Length {value:?}")]
    BadContentLength { value: String },
    #[error("more than {limit} bytes buffered without draining next_frame")]
    BufferOverflow { limit: usize },
}

impl FramingError {
    /// Stable code, as for [`ParseError`](super::ParseError).
    pub fn code(&self) -> &'static str {
        match self {
            Self::HeadersTooLarge { .. } => "sip.frame.headers_too_large",
            Self::TooManyHeaderLines { .. } => "sip.frame.too_many_header_lines",
            Self::BodyTooLarge { .. } => "sip.frame.body_too_large",
            Self::MessageTooLarge { .. } => "sip.frame.too_large",
            Self::MissingContentLength => "sip.frame.missing_content_length",
            Self::BadContentLength { .. } => "sip.frame.bad_content_length",
            Self::BufferOverflow { .. } => "sip.frame.buffer_overflow",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Looking for the end of a header section; `scanned` bytes already searched.
    Headers { scanned: usize },
    /// Header section parsed; waiting for `total` bytes in all.
    Body { total: usize },
}

/// Sans-IO framer for one stream connection: `push` what the socket read, then call
/// `next_frame` until it returns `Ok(None)`.
#[derive(Debug)]
pub struct StreamFramer {
    buf: BytesMut,
    limits: Limits,
    state: State,
    failed: Option<FramingError>,
}

impl StreamFramer {
    pub fn new(limits: Limits) -> Self {
        Self {
            buf: BytesMut::new(),
            limits,
            state: State::Headers { scanned: 0 },
            failed: None,
        }
    }

    /// Bytes currently buffered.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Appends bytes read from the connection. The buffer is bounded: if more than
    /// `max_message_bytes` are already waiting (the caller did not drain
    /// [`next_frame`](Self::next_frame)), the bytes are dropped and the framer fails.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        // A drained framer holds at most one incomplete message (< max_message_bytes).
        if self.buf.len() > self.limits.max_message_bytes {
            self.failed = Some(FramingError::BufferOverflow {
                limit: self.limits.max_message_bytes,
            });
            self.buf.clear();
            return;
        }
        self.buf.extend_from_slice(bytes);
    }

    fn fail(&mut self, e: FramingError) -> Result<Option<Frame>, FramingError> {
        self.buf.clear();
        self.failed = Some(e.clone());
        Err(e)
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FramingError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.state {
            State::Body { total } => {
                if self.buf.len() < total {
                    return Ok(None);
                }
                self.state = State::Headers { scanned: 0 };
                Ok(Some(Frame::Message(self.buf.split_to(total).freeze())))
            }
            State::Headers { scanned } => {
                // Keep-alives only between messages (scanned == 0 means nothing of a
                // message has been seen yet).
                if scanned == 0 && self.buf.first() == Some(&b'\r') {
                    if self.buf.starts_with(b"\r\n\r\n") {
                        let _ = self.buf.split_to(4);
                        return Ok(Some(Frame::KeepAlive { pong_needed: true }));
                    }
                    // "\r", "\r\n" or "\r\n\r": a ping may still be arriving.
                    if b"\r\n\r\n".starts_with(&self.buf) {
                        return Ok(None);
                    }
                    if self.buf.starts_with(b"\r\n") {
                        let _ = self.buf.split_to(2);
                        return Ok(Some(Frame::KeepAlive { pong_needed: false }));
                    }
                }
                let from = scanned.saturating_sub(3);
                let found = self
                    .buf
                    .get(from..)
                    .and_then(|b| b.windows(4).position(|w| w == b"\r\n\r\n"))
                    .map(|p| p + from);
                let Some(end) = found else {
                    if self.buf.len() > self.limits.max_message_bytes {
                        let limit = self.limits.max_message_bytes;
                        return self.fail(FramingError::HeadersTooLarge { limit });
                    }
                    self.state = State::Headers {
                        scanned: self.buf.len(),
                    };
                    return Ok(None);
                };
                let header_len = end + 4;
                if header_len > self.limits.max_message_bytes {
                    let limit = self.limits.max_message_bytes;
                    return self.fail(FramingError::HeadersTooLarge { limit });
                }
                let body_len = match self.content_length(end) {
                    Ok(n) => n,
                    Err(e) => return self.fail(e),
                };
                if body_len > self.limits.max_body_bytes {
                    let limit = self.limits.max_body_bytes;
                    return self.fail(FramingError::BodyTooLarge {
                        size: body_len,
                        limit,
                    });
                }
                let total = header_len + body_len;
                if total > self.limits.max_message_bytes {
                    let limit = self.limits.max_message_bytes;
                    return self.fail(FramingError::MessageTooLarge { size: total, limit });
                }
                self.state = State::Body { total };
                self.next_frame()
            }
        }
    }

    /// Content-Length from the header section `buf[..end]`, honouring folding
    /// (§7.3.1) and the compact form `l` (§7.3.3).
    fn content_length(&self, end: usize) -> Result<usize, FramingError> {
        let head = self.buf.get(..end).unwrap_or_default();
        let mut lines = head.split(|&b| b == b'\n').skip(1).peekable();
        let mut count = 0usize;
        let mut value: Option<String> = None;
        while let Some(line) = lines.next() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
                continue;
            }
            count += 1;
            if count > self.limits.max_header_lines {
                return Err(FramingError::TooManyHeaderLines {
                    limit: self.limits.max_header_lines,
                });
            }
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let name = String::from_utf8_lossy(line.get(..colon).unwrap_or_default());
            if !name_is(name.trim_end(), "Content-Length") {
                continue;
            }
            let mut v = String::from_utf8_lossy(line.get(colon + 1..).unwrap_or_default())
                .trim()
                .to_string();
            while let Some(next) = lines.peek() {
                if next.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
                    let cont = next.strip_suffix(b"\r").unwrap_or(next);
                    v.push_str(String::from_utf8_lossy(cont).trim());
                    lines.next();
                } else {
                    break;
                }
            }
            if value.as_ref().is_some_and(|prev| prev != &v) {
                return Err(FramingError::BadContentLength { value: v });
            }
            value = Some(v);
        }
        let v = value.ok_or(FramingError::MissingContentLength)?;
        let bad = || FramingError::BadContentLength {
            value: v.chars().take(32).collect(),
        };
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let digits = v.trim_start_matches('0');
        if digits.is_empty() {
            return Ok(0);
        }
        digits.parse::<usize>().map_err(|_| bad())
    }
}

impl Default for StreamFramer {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MSG: &[u8] =
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: 5\r\n\r\nhello";
    const MSG2: &[u8] = b"SIP/2.0 200 OK\r\nContent-Length:\r\n 0\r\n\r\n";

    fn drain(f: &mut StreamFramer) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Some(fr) = f.next_frame().unwrap() {
            out.push(fr);
        }
        out
    }

    #[test]
    fn several_messages_and_pings_in_one_push() {
        let mut f = StreamFramer::default();
        let mut all = b"\r\n\r\n".to_vec();
        all.extend_from_slice(MSG);
        all.extend_from_slice(b"\r\n");
        all.extend_from_slice(MSG2);
        all.extend_from_slice(MSG);
        f.push(&all);
        assert_eq!(
            drain(&mut f),
            vec![
                Frame::KeepAlive { pong_needed: true },
                Frame::Message(Bytes::from_static(MSG)),
                Frame::KeepAlive { pong_needed: false },
                Frame::Message(Bytes::from_static(MSG2)),
                Frame::Message(Bytes::from_static(MSG)),
            ]
        );
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn split_at_every_byte() {
        let mut stream = MSG.to_vec();
        stream.extend_from_slice(b"\r\n\r\n");
        stream.extend_from_slice(MSG2);
        for chunk in 1..=stream.len() {
            let mut f = StreamFramer::default();
            let mut frames = Vec::new();
            for c in stream.chunks(chunk) {
                f.push(c);
                while let Some(fr) = f
                    .next_frame()
                    .unwrap_or_else(|e| panic!("chunk {chunk}: {e} {:?}", f.buf))
                {
                    frames.push(fr);
                }
            }
            assert_eq!(
                frames,
                vec![
                    Frame::Message(Bytes::from_static(MSG)),
                    Frame::KeepAlive { pong_needed: true },
                    Frame::Message(Bytes::from_static(MSG2)),
                ],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn lone_crlf_waits_then_resolves() {
        let mut f = StreamFramer::default();
        f.push(b"\r\n");
        assert_eq!(f.next_frame().unwrap(), None);
        f.push(b"\r");
        assert_eq!(f.next_frame().unwrap(), None);
        f.push(b"\n");
        assert_eq!(
            f.next_frame().unwrap(),
            Some(Frame::KeepAlive { pong_needed: true })
        );
        f.push(b"\r\nO");
        assert_eq!(
            f.next_frame().unwrap(),
            Some(Frame::KeepAlive { pong_needed: false })
        );
        assert_eq!(f.next_frame().unwrap(), None);
    }

    #[test]
    fn errors_are_fatal_and_bounded() {
        let limits = Limits {
            max_message_bytes: 200,
            max_body_bytes: 50,
            ..Limits::default()
        };
        let mut f = StreamFramer::new(limits.clone());
        f.push(&[b'A'; 201]);
        assert!(matches!(
            f.next_frame(),
            Err(FramingError::HeadersTooLarge { .. })
        ));
        assert!(f.next_frame().is_err(), "stays failed");
        f.push(MSG);
        assert_eq!(f.buffered(), 0);

        for (msg, code) in [
            (&b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n"[..], "sip.frame.missing_content_length"),
            (b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n", "sip.frame.bad_content_length"),
            (b"OPTIONS sip:a@b SIP/2.0\r\nl: ten\r\n\r\n", "sip.frame.bad_content_length"),
            (b"OPTIONS sip:a@b SIP/2.0\r\nl: 1\r\nl: 2\r\n\r\n", "sip.frame.bad_content_length"),
            (b"OPTIONS sip:a@b SIP/2.0\r\nl: 99999999999999999999999\r\n\r\n", "sip.frame.bad_content_length"),
            (b"OPTIONS sip:a@b SIP/2.0\r\nl: 51\r\n\r\n", "sip.frame.body_too_large"),
            (b"OPTIONS sip:a@b SIP/2.0\r\nX: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\nl: 50\r\n\r\n", "sip.frame.too_large"),
        ] {
            let mut f = StreamFramer::new(limits.clone());
            f.push(msg);
            assert_eq!(f.next_frame().unwrap_err().code(), code, "{}", String::from_utf8_lossy(msg));
        }

        let mut f = StreamFramer::new(Limits {
            max_header_lines: 3,
            ..Limits::default()
        });
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nA: 1\r\nB: 2\r\nC: 3\r\nl: 0\r\n\r\n");
        assert_eq!(
            f.next_frame().unwrap_err().code(),
            "sip.frame.too_many_header_lines"
        );

        // An undrained framer refuses to grow without bound.
        let mut f = StreamFramer::new(limits);
        for _ in 0..10 {
            f.push(&[b'x'; 100]);
        }
        assert!(f.buffered() <= 300);
        assert!(matches!(
            f.next_frame(),
            Err(FramingError::BufferOverflow { .. })
        ));
    }

    #[test]
    fn framed_messages_parse() {
        let mut f = StreamFramer::default();
        let inv = b"INVITE sip:b@example.com SIP/2.0\r\nv: SIP/2.0/TCP h;branch=z9hG4bK1\r\nf: <sip:a@example.com>;tag=1\r\nt: <sip:b@example.com>\r\ni: c1\r\nCSeq: 1 INVITE\r\nl: 2\r\n\r\nhi";
        f.push(inv);
        let Some(Frame::Message(m)) = f.next_frame().unwrap() else {
            panic!("message")
        };
        let msg = crate::message::parse_stream_message(&m, &Limits::default()).unwrap();
        assert_eq!(msg.body(), b"hi");
    }
}
