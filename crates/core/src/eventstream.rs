//! The AWS event-stream framing (`application/vnd.amazon.eventstream`) that Bedrock's streaming
//! operations answer with: a decoder that reads frames out of bytes arriving in any chunking,
//! and an encoder (the test upstream and the benchmarks speak it too).
//!
//! A message is `total length (u32) | headers length (u32) | prelude CRC32 | headers | payload |
//! message CRC32`, big-endian, the CRCs over every byte before them. The gateway never re-encodes
//! a stream: it relays the bytes it received and feeds a copy of them to a [`Decoder`] on the
//! side, so a frame this module cannot read is the client's to judge, never altered.

/// Largest message accepted (Bedrock's are a few kilobytes; the protocol allows 16 MiB).
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;
const PRELUDE: usize = 12;

/// One decoded message: its string headers (the only kind Bedrock sends that matter here) and
/// its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub headers: Vec<(String, HeaderValue)>,
    pub payload: Vec<u8>,
}

/// A header value. Bedrock sends strings (`:message-type`, `:event-type`, `:content-type`,
/// `:exception-type`); the other types are read so that a message with them still decodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    Bool(bool),
    Int(i64),
    Bytes(Vec<u8>),
    String(String),
    Timestamp(i64),
    Uuid([u8; 16]),
}

impl Message {
    /// A string header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|(n, v)| match v {
            HeaderValue::String(s) if n == name => Some(s.as_str()),
            _ => None,
        })
    }

    /// An event message: `:message-type event` with this `:event-type` and a JSON payload.
    pub fn event(event_type: &str, payload: &[u8]) -> Message {
        Message {
            headers: vec![
                (":event-type".into(), HeaderValue::String(event_type.into())),
                (
                    ":content-type".into(),
                    HeaderValue::String("application/json".into()),
                ),
                (":message-type".into(), HeaderValue::String("event".into())),
            ],
            payload: payload.to_vec(),
        }
    }

    /// An in-stream exception (`:message-type exception`), as Bedrock sends a throttle or a
    /// model error after the stream has begun.
    pub fn exception(exception_type: &str, message: &str) -> Message {
        Message {
            headers: vec![
                (
                    ":exception-type".into(),
                    HeaderValue::String(exception_type.into()),
                ),
                (
                    ":content-type".into(),
                    HeaderValue::String("application/json".into()),
                ),
                (
                    ":message-type".into(),
                    HeaderValue::String("exception".into()),
                ),
            ],
            payload: serde_json::json!({ "message": message })
                .to_string()
                .into_bytes(),
        }
    }

    /// The message's bytes on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let mut headers = Vec::new();
        for (name, value) in &self.headers {
            headers.push(name.len() as u8);
            headers.extend_from_slice(name.as_bytes());
            match value {
                HeaderValue::Bool(true) => headers.push(0),
                HeaderValue::Bool(false) => headers.push(1),
                HeaderValue::Int(v) => {
                    headers.push(5);
                    headers.extend_from_slice(&v.to_be_bytes());
                }
                HeaderValue::Bytes(b) => {
                    headers.push(6);
                    headers.extend_from_slice(&(b.len() as u16).to_be_bytes());
                    headers.extend_from_slice(b);
                }
                HeaderValue::String(s) => {
                    headers.push(7);
                    headers.extend_from_slice(&(s.len() as u16).to_be_bytes());
                    headers.extend_from_slice(s.as_bytes());
                }
                HeaderValue::Timestamp(v) => {
                    headers.push(8);
                    headers.extend_from_slice(&v.to_be_bytes());
                }
                HeaderValue::Uuid(u) => {
                    headers.push(9);
                    headers.extend_from_slice(u);
                }
            }
        }
        let total = PRELUDE + headers.len() + self.payload.len() + 4;
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&(total as u32).to_be_bytes());
        out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        let prelude_crc = crc32fast::hash(&out);
        out.extend_from_slice(&prelude_crc.to_be_bytes());
        out.extend_from_slice(&headers);
        out.extend_from_slice(&self.payload);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }
}

/// Why bytes are not an event stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("event-stream message of {0} bytes is longer than the {MAX_MESSAGE}-byte limit")]
    TooLong(usize),
    #[error("event-stream message length {0} is shorter than its prelude and headers")]
    TooShort(usize),
    #[error("event-stream prelude CRC mismatch")]
    PreludeCrc,
    #[error("event-stream message CRC mismatch")]
    MessageCrc,
    #[error("event-stream header {0}")]
    Header(&'static str),
}

/// Reads messages out of bytes pushed in any chunking. After an error it reads nothing more
/// (the framing is lost; the bytes still reach the client untouched).
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    start: usize,
    failed: bool,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed {
            return;
        }
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 64 * 1024 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes pushed but not yet part of a whole message (a stream that ends with some is cut).
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next whole message, if one has arrived.
    pub fn next_message(&mut self) -> Option<Result<Message, FrameError>> {
        if self.failed {
            return None;
        }
        let rest = &self.buf[self.start..];
        if rest.len() < PRELUDE {
            return None;
        }
        let total = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let headers_len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        let fail = |d: &mut Decoder, e| {
            d.failed = true;
            Some(Err(e))
        };
        if crc32fast::hash(&rest[..8]) != u32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]])
        {
            return fail(self, FrameError::PreludeCrc);
        }
        if total > MAX_MESSAGE {
            return fail(self, FrameError::TooLong(total));
        }
        if total < PRELUDE + headers_len + 4 {
            return fail(self, FrameError::TooShort(total));
        }
        if rest.len() < total {
            return None;
        }
        let frame = &rest[..total];
        let crc = u32::from_be_bytes([
            frame[total - 4],
            frame[total - 3],
            frame[total - 2],
            frame[total - 1],
        ]);
        if crc32fast::hash(&frame[..total - 4]) != crc {
            return fail(self, FrameError::MessageCrc);
        }
        let headers = match read_headers(&frame[PRELUDE..PRELUDE + headers_len]) {
            Ok(h) => h,
            Err(e) => return fail(self, e),
        };
        let payload = frame[PRELUDE + headers_len..total - 4].to_vec();
        self.start += total;
        Some(Ok(Message { headers, payload }))
    }
}

fn read_headers(mut b: &[u8]) -> Result<Vec<(String, HeaderValue)>, FrameError> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], FrameError> {
        if b.len() < n {
            return Err(FrameError::Header("runs past the headers"));
        }
        let (head, tail) = b.split_at(n);
        *b = tail;
        Ok(head)
    }
    fn be(bytes: &[u8]) -> i64 {
        bytes.iter().fold(0i64, |acc, x| (acc << 8) | i64::from(*x))
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let n = take(&mut b, 1)?[0] as usize;
        let name = String::from_utf8(take(&mut b, n)?.to_vec())
            .map_err(|_| FrameError::Header("name is not UTF-8"))?;
        let value = match take(&mut b, 1)?[0] {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => HeaderValue::Int(i64::from(take(&mut b, 1)?[0] as i8)),
            3 => HeaderValue::Int(i64::from(be(take(&mut b, 2)?) as i16)),
            4 => HeaderValue::Int(i64::from(be(take(&mut b, 4)?) as i32)),
            5 => HeaderValue::Int(be(take(&mut b, 8)?)),
            kind @ (6 | 7) => {
                let l = take(&mut b, 2)?;
                let v = take(&mut b, u16::from_be_bytes([l[0], l[1]]) as usize)?.to_vec();
                if kind == 6 {
                    HeaderValue::Bytes(v)
                } else {
                    HeaderValue::String(
                        String::from_utf8(v)
                            .map_err(|_| FrameError::Header("string value is not UTF-8"))?,
                    )
                }
            }
            8 => HeaderValue::Timestamp(be(take(&mut b, 8)?)),
            9 => {
                let mut u = [0u8; 16];
                u.copy_from_slice(take(&mut b, 16)?);
                HeaderValue::Uuid(u)
            }
            _ => return Err(FrameError::Header("has an unknown value type")),
        };
        out.push((name, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_in_any_chunking() {
        let a = Message::event("chunk", br#"{"bytes":"e30="}"#);
        let b = Message::exception("throttlingException", "Too many tokens");
        let c = Message {
            headers: vec![
                ("flag".into(), HeaderValue::Bool(false)),
                ("n".into(), HeaderValue::Int(-5)),
                ("raw".into(), HeaderValue::Bytes(vec![1, 2, 3])),
                ("at".into(), HeaderValue::Timestamp(1_700_000_000_000)),
                ("id".into(), HeaderValue::Uuid([7; 16])),
            ],
            payload: vec![],
        };
        let mut wire = a.encode();
        wire.extend(b.encode());
        wire.extend(c.encode());
        for size in [1, 2, 5, 13, wire.len()] {
            let mut d = Decoder::new();
            let mut got = Vec::new();
            for part in wire.chunks(size) {
                d.push(part);
                while let Some(m) = d.next_message() {
                    got.push(m.unwrap());
                }
            }
            assert_eq!(
                got,
                vec![a.clone(), b.clone(), c.clone()],
                "chunks of {size}"
            );
            assert_eq!(d.pending(), 0);
        }
        assert_eq!(b.header(":exception-type"), Some("throttlingException"));
    }

    #[test]
    fn corrupt_frames_are_named() {
        let wire = Message::event("chunk", b"{}").encode();
        let mut bad = wire.clone();
        bad[9] ^= 1;
        let mut d = Decoder::new();
        d.push(&bad);
        assert_eq!(d.next_message(), Some(Err(FrameError::PreludeCrc)));
        assert_eq!(d.next_message(), None, "nothing after the framing is lost");
        let mut bad = wire.clone();
        let n = bad.len();
        bad[n - 6] ^= 1;
        let mut d = Decoder::new();
        d.push(&bad);
        assert_eq!(d.next_message(), Some(Err(FrameError::MessageCrc)));
    }

    #[test]
    fn a_known_frame_from_the_protocol_description() {
        // The empty message: 16 bytes, total 0x10, headers 0, and the two CRCs.
        let m = Message {
            headers: vec![],
            payload: vec![],
        };
        let wire = m.encode();
        assert_eq!(&wire[..8], &[0, 0, 0, 0x10, 0, 0, 0, 0]);
        assert_eq!(&wire[8..12], &0x05c2_48ebu32.to_be_bytes());
        assert_eq!(&wire[12..], &0x7d98_c8ffu32.to_be_bytes());
    }
}
