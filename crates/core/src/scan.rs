//! A cursor over one line of JSON, made for invocation records.
//!
//! Values bedrock-usage reads are parsed strictly (types checked, strings unescaped and
//! UTF-8-checked, integers exact). Values it skips (bodies, unknown fields) are skipped
//! structurally: a string to its closing quote with `memchr`, a container to its matching
//! bracket. Each byte of a body is looked at once, in bulk, which is what makes ingest fast on
//! records whose bodies are tens of kilobytes. What lies inside a skipped body is not judged
//! beyond balanced brackets and closed strings: a body is the caller's business, not ours.

use std::borrow::Cow;

use crate::record::RecordError;

/// Containers nested deeper than this are refused (serde_json's default limit too).
const MAX_DEPTH: usize = 128;

/// The largest token count a record may give: 2^40 (about 1.1 trillion), far above any real call,
/// and small enough that sums over millions of calls never overflow the store's 64-bit integers.
pub const MAX_COUNT: u64 = 1 << 40;

pub struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    pub fn new(b: &'a [u8]) -> Scan<'a> {
        Scan { b, i: 0 }
    }

    pub fn at_end(&self) -> bool {
        self.i >= self.b.len()
    }

    /// A syntax error at the cursor (columns count bytes from 1).
    pub fn err(&self, message: &str) -> RecordError {
        if self.i >= self.b.len() {
            return RecordError::Json {
                column: self.b.len() + 1,
                message: format!("the line ends early: {message}"),
            };
        }
        RecordError::Json {
            column: self.i + 1,
            message: message.to_string(),
        }
    }

    fn field_err(field: &str, message: String) -> RecordError {
        RecordError::Field {
            field: field.to_string(),
            message,
        }
    }

    #[inline]
    pub fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    pub fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    /// The first byte of the next value.
    #[inline]
    pub fn peek_value(&mut self) -> Option<u8> {
        self.ws();
        self.peek()
    }

    fn eat(&mut self, c: u8, what: &str) -> Result<(), RecordError> {
        if self.peek_value() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(&format!("expected {what}")))
        }
    }

    /// What kind of JSON value starts here, for messages.
    fn kind(&mut self) -> &'static str {
        match self.peek_value() {
            Some(b'"') => "a string",
            Some(b'{') => "an object",
            Some(b'[') => "an array",
            Some(b't' | b'f') => "a boolean",
            Some(b'n') => "null",
            Some(b'-' | b'0'..=b'9') => "a number",
            _ => "no value",
        }
    }

    /// Consumes `null` if it is next.
    fn null(&mut self) -> bool {
        self.ws();
        if self.b[self.i..].starts_with(b"null") {
            self.i += 4;
            return true;
        }
        false
    }

    /// A field that must be an object or null: `true` with the cursor on the object.
    pub fn opt_object(&mut self, field: &str) -> Result<bool, RecordError> {
        if self.null() {
            return Ok(false);
        }
        if self.peek_value() == Some(b'{') {
            return Ok(true);
        }
        let found = self.kind();
        Err(Self::field_err(
            field,
            format!("expected an object, found {found}"),
        ))
    }

    /// Skips a value and says whether it was anything but null.
    pub fn present(&mut self) -> Result<bool, RecordError> {
        if self.null() {
            return Ok(false);
        }
        self.skip_value()?;
        Ok(true)
    }

    /// `{ "key": value, ... }`: calls `f` for each key with the cursor on its value; `f` must
    /// consume the value.
    pub fn object(
        &mut self,
        mut f: impl FnMut(&mut Self, Cow<'a, str>) -> Result<(), RecordError>,
    ) -> Result<(), RecordError> {
        self.eat(b'{', "`{`")?;
        if self.peek_value() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            if self.peek_value() != Some(b'"') {
                return Err(self.err("expected a key in double quotes"));
            }
            let key = self.string()?;
            self.eat(b':', "`:` after a key")?;
            f(self, key)?;
            match self.peek_value() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected `,` or `}`")),
            }
        }
    }

    /// `[ value, ... ]`: calls `f` with the cursor on each element; `f` must consume it.
    pub fn array(
        &mut self,
        mut f: impl FnMut(&mut Self) -> Result<(), RecordError>,
    ) -> Result<(), RecordError> {
        self.eat(b'[', "`[`")?;
        if self.peek_value() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            f(self)?;
            match self.peek_value() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected `,` or `]`")),
            }
        }
    }

    /// A string value or null, for a field the record must give as a string.
    pub fn opt_string(&mut self, field: &str) -> Result<Option<Cow<'a, str>>, RecordError> {
        match self.peek_value() {
            Some(b'"') => self.string().map(Some),
            _ if self.null() => Ok(None),
            _ => {
                let found = self.kind();
                Err(Self::field_err(
                    field,
                    format!("expected a string, found {found}"),
                ))
            }
        }
    }

    /// A non-negative integer or null, for a count the record must give as one.
    pub fn opt_u64(&mut self, field: &str) -> Result<Option<u64>, RecordError> {
        if self.null() {
            return Ok(None);
        }
        let start = self.i;
        match self.peek() {
            Some(b'0'..=b'9') => {}
            Some(b'-') => {
                self.skip_value()?;
                let text = String::from_utf8_lossy(&self.b[start..self.i]);
                return Err(Self::field_err(
                    field,
                    format!("expected a non-negative integer, found `{text}`"),
                ));
            }
            _ => {
                let found = self.kind();
                return Err(Self::field_err(
                    field,
                    format!("expected a non-negative integer, found {found}"),
                ));
            }
        }
        if self.peek() == Some(b'0') && matches!(self.b.get(self.i + 1), Some(b'0'..=b'9')) {
            self.skip_value_from(start)?;
            let text = String::from_utf8_lossy(&self.b[start..self.i]);
            return Err(Self::field_err(
                field,
                format!("`{text}` has leading zeros, which JSON does not allow"),
            ));
        }
        let mut v: u64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add((c - b'0') as u64))
                .filter(|v| *v <= MAX_COUNT)
                .ok_or_else(|| {
                    Self::field_err(
                        field,
                        format!("the number is larger than any real count (at most {MAX_COUNT})"),
                    )
                })?;
            self.i += 1;
        }
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            self.skip_value_from(start)?;
            let text = String::from_utf8_lossy(&self.b[start..self.i]);
            return Err(Self::field_err(
                field,
                format!("expected a non-negative integer, found `{text}`"),
            ));
        }
        Ok(Some(v))
    }

    /// A JSON number at the cursor, as f64.
    pub fn number(&mut self) -> Result<f64, RecordError> {
        self.ws();
        let start = self.i;
        self.skip_value_from(start)?;
        std::str::from_utf8(&self.b[start..self.i])
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| {
                self.i = start;
                self.err("not a number")
            })
    }

    /// Consumes `true` or `false`.
    pub fn boolean(&mut self) -> Result<bool, RecordError> {
        self.ws();
        if self.b[self.i..].starts_with(b"true") {
            self.i += 4;
            Ok(true)
        } else if self.b[self.i..].starts_with(b"false") {
            self.i += 5;
            Ok(false)
        } else {
            Err(self.err("expected a boolean"))
        }
    }

    /// A count inside a body: an integer, or `None` for any other value (skipped).
    pub fn lenient_u64(&mut self) -> Result<Option<u64>, RecordError> {
        self.ws();
        let start = self.i;
        if let Some(b'0'..=b'9') = self.peek() {
            let mut v: u64 = 0;
            while let Some(c @ b'0'..=b'9') = self.peek() {
                v = v.saturating_mul(10).saturating_add((c - b'0') as u64);
                self.i += 1;
            }
            if !matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
                return Ok(Some(v));
            }
            self.skip_value_from(start)?;
            return Ok(None);
        }
        self.skip_value()?;
        Ok(None)
    }

    /// The string at the cursor, unescaped; borrowed from the line when it has no escapes.
    pub fn string(&mut self) -> Result<Cow<'a, str>, RecordError> {
        let b = self.b;
        let start = self.i + 1;
        match memchr::memchr2(b'"', b'\\', &b[start.min(b.len())..]) {
            Some(k) if b[start + k] == b'"' => {
                let raw = &b[start..start + k];
                if let Some(p) = raw.iter().position(|&c| c < 0x20) {
                    self.i = start + p;
                    return Err(self.err("a control character inside a string"));
                }
                let s = std::str::from_utf8(raw).map_err(|e| RecordError::Json {
                    column: start + e.valid_up_to() + 1,
                    message: "invalid UTF-8 inside a string".into(),
                })?;
                self.i = start + k + 1;
                Ok(Cow::Borrowed(s))
            }
            Some(_) => self.string_with_escapes(start).map(Cow::Owned),
            None => {
                self.i = b.len();
                Err(self.err("a string is not closed"))
            }
        }
    }

    fn string_with_escapes(&mut self, start: usize) -> Result<String, RecordError> {
        let b = self.b;
        let mut out: Vec<u8> = Vec::new();
        let mut i = start;
        loop {
            let Some(k) = memchr::memchr2(b'"', b'\\', &b[i.min(b.len())..]) else {
                self.i = b.len();
                return Err(self.err("a string is not closed"));
            };
            let seg = &b[i..i + k];
            if let Some(p) = seg.iter().position(|&c| c < 0x20) {
                self.i = i + p;
                return Err(self.err("a control character inside a string"));
            }
            out.extend_from_slice(seg);
            i += k;
            if b[i] == b'"' {
                self.i = i + 1;
                return String::from_utf8(out).map_err(|_| RecordError::Json {
                    column: start + 1,
                    message: "invalid UTF-8 inside a string".into(),
                });
            }
            let esc = b.get(i + 1).copied();
            i += 2;
            let c = match esc {
                Some(b'"') => '"',
                Some(b'\\') => '\\',
                Some(b'/') => '/',
                Some(b'b') => '\u{8}',
                Some(b'f') => '\u{c}',
                Some(b'n') => '\n',
                Some(b'r') => '\r',
                Some(b't') => '\t',
                Some(b'u') => {
                    let hi = self.hex4(i)?;
                    i += 4;
                    let code = if (0xD800..0xDC00).contains(&hi) {
                        let lo = if b.get(i) == Some(&b'\\') && b.get(i + 1) == Some(&b'u') {
                            Some(self.hex4(i + 2)?)
                        } else {
                            None
                        };
                        match lo {
                            Some(lo) if (0xDC00..0xE000).contains(&lo) => {
                                i += 6;
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            }
                            _ => {
                                self.i = i;
                                return Err(self.err("an unpaired surrogate in a \\u escape"));
                            }
                        }
                    } else {
                        hi
                    };
                    match char::from_u32(code) {
                        Some(c) => c,
                        None => {
                            self.i = i;
                            return Err(self.err("an unpaired surrogate in a \\u escape"));
                        }
                    }
                }
                _ => {
                    self.i = i - 1;
                    return Err(self.err("an invalid escape in a string"));
                }
            };
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }

    fn hex4(&mut self, at: usize) -> Result<u32, RecordError> {
        let h = self
            .b
            .get(at..at + 4)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok());
        h.ok_or_else(|| {
            self.i = at;
            self.err("an invalid \\u escape")
        })
    }

    /// Skips a string: to the closing quote, jumping over escapes, 16 bytes at a time.
    #[inline]
    fn skip_string(&mut self) -> Result<(), RecordError> {
        match skip_string_body(self.b, self.i + 1) {
            Some(end) => {
                self.i = end;
                Ok(())
            }
            None => {
                self.i = self.b.len();
                Err(self.err("a string is not closed"))
            }
        }
    }

    pub fn skip_value(&mut self) -> Result<(), RecordError> {
        self.ws();
        let start = self.i;
        self.skip_value_from(start)
    }

    fn skip_value_from(&mut self, start: usize) -> Result<(), RecordError> {
        self.i = start;
        match self.peek() {
            Some(b'"') => self.skip_string(),
            Some(b'{' | b'[') => self.skip_container(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => {
                self.i += 1;
                while let Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') = self.peek() {
                    self.i += 1;
                }
                Ok(())
            }
            _ => Err(self.err("expected a value")),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), RecordError> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(self.err("expected a value"))
        }
    }

    /// Skips an object or array: brackets must balance and strings must close.
    fn skip_container(&mut self) -> Result<(), RecordError> {
        let b = self.b;
        // The closing bracket each open container expects: a fixed array for ordinary depths,
        // spilling into a vector beyond (a skipped body's depth must not matter).
        let mut stack = [0u8; MAX_DEPTH];
        let mut deep: Vec<u8> = Vec::new();
        let mut depth = 0usize;
        let mut i = self.i;
        while let Some(j) = next_structural(b, i) {
            match b[j] {
                b'"' => {
                    self.i = j;
                    self.skip_string()?;
                    i = self.i;
                    continue;
                }
                c @ (b'{' | b'[') => {
                    let close = if c == b'{' { b'}' } else { b']' };
                    if depth < MAX_DEPTH {
                        stack[depth] = close;
                    } else {
                        deep.push(close);
                    }
                    depth += 1;
                }
                c => {
                    let expected = match depth {
                        0 => None,
                        d if d <= MAX_DEPTH => Some(stack[d - 1]),
                        _ => deep.pop(),
                    };
                    if expected != Some(c) {
                        self.i = j;
                        return Err(self.err("mismatched brackets"));
                    }
                    depth -= 1;
                    if depth == 0 {
                        self.i = j + 1;
                        return Ok(());
                    }
                }
            }
            i = j + 1;
        }
        self.i = b.len();
        Err(self.err("an object or array is not closed"))
    }
}

/// The index just after the closing quote of a string whose content starts at `i`, or `None` if
/// the string does not close. Escapes are stepped over (the byte after a backslash never ends a
/// string).
///
/// 64 bytes at a time: masks of quotes and backslashes, and the escaped positions computed from
/// runs of backslashes without branches (simdjson's `find_escaped_branchless`), so an escape costs
/// no branch. The last partial block is copied into a zero-padded one.
#[inline]
fn skip_string_body(b: &[u8], mut i: usize) -> Option<usize> {
    let mut prev_escaped = 0u64;
    while i < b.len() {
        let (quotes, backslashes) = if i + 64 <= b.len() {
            block_masks(&b[i..i + 64])
        } else {
            let mut pad = [0u8; 64];
            pad[..b.len() - i].copy_from_slice(&b[i..]);
            block_masks(&pad)
        };
        let escaped = find_escaped(backslashes, &mut prev_escaped);
        let ends = quotes & !escaped;
        if ends != 0 {
            let end = i + ends.trailing_zeros() as usize;
            return (end < b.len()).then_some(end + 1);
        }
        i += 64;
    }
    None
}

const EVEN_BITS: u64 = 0x5555_5555_5555_5555;

/// The positions escaped by a backslash, given the backslash mask of a block; `prev_escaped`
/// carries an escape across blocks.
#[inline]
fn find_escaped(backslash: u64, prev_escaped: &mut u64) -> u64 {
    let backslash = backslash & !*prev_escaped;
    let follows_escape = (backslash << 1) | *prev_escaped;
    let odd_sequence_starts = backslash & !EVEN_BITS & !follows_escape;
    let (sequences_starting_on_even_bits, overflow) =
        odd_sequence_starts.overflowing_add(backslash);
    *prev_escaped = overflow as u64;
    let invert_mask = sequences_starting_on_even_bits << 1;
    (EVEN_BITS ^ invert_mask) & follows_escape
}

/// Masks of `"` and `\\` in a 64-byte block (bit k = byte k).
#[inline]
fn block_masks(block: &[u8]) -> (u64, u64) {
    debug_assert_eq!(block.len(), 64);
    #[cfg(target_arch = "x86_64")]
    {
        // SSE2 is part of x86_64 itself: no CPU detection, no `target-cpu=native`.
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
        };
        // SAFETY: SSE2 is always available on x86_64, and the four 16-byte loads read
        // `block[0..64]`, which the assertion above and every caller guarantee exists.
        unsafe {
            let quote = _mm_set1_epi8(b'"' as i8);
            let backslash = _mm_set1_epi8(b'\\' as i8);
            let (mut q, mut bs) = (0u64, 0u64);
            for k in 0..4 {
                let v = _mm_loadu_si128(block.as_ptr().add(16 * k) as *const __m128i);
                q |= (_mm_movemask_epi8(_mm_cmpeq_epi8(v, quote)) as u16 as u64) << (16 * k);
                bs |= (_mm_movemask_epi8(_mm_cmpeq_epi8(v, backslash)) as u16 as u64) << (16 * k);
            }
            (q, bs)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let (mut q, mut bs) = (0u64, 0u64);
        for (k, &c) in block.iter().enumerate() {
            q |= ((c == b'"') as u64) << k;
            bs |= ((c == b'\\') as u64) << k;
        }
        (q, bs)
    }
}

/// The next `"`, `{`, `}`, `[` or `]` at or after `i`.
#[inline]
fn next_structural(b: &[u8], mut i: usize) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
            _mm_set1_epi8,
        };
        // SAFETY: as in `skip_string_body`.
        unsafe {
            let (q, lb, rb, ls, rs) = (
                _mm_set1_epi8(b'"' as i8),
                _mm_set1_epi8(b'{' as i8),
                _mm_set1_epi8(b'}' as i8),
                _mm_set1_epi8(b'[' as i8),
                _mm_set1_epi8(b']' as i8),
            );
            while i + 16 <= b.len() {
                let v = _mm_loadu_si128(b.as_ptr().add(i) as *const __m128i);
                let m = _mm_or_si128(
                    _mm_or_si128(
                        _mm_cmpeq_epi8(v, q),
                        _mm_or_si128(_mm_cmpeq_epi8(v, lb), _mm_cmpeq_epi8(v, rb)),
                    ),
                    _mm_or_si128(_mm_cmpeq_epi8(v, ls), _mm_cmpeq_epi8(v, rs)),
                );
                let mask = _mm_movemask_epi8(m) as u32;
                if mask != 0 {
                    return Some(i + mask.trailing_zeros() as usize);
                }
                i += 16;
            }
        }
    }
    b.get(i..)?
        .iter()
        .position(|c| matches!(c, b'"' | b'{' | b'}' | b'[' | b']'))
        .map(|k| i + k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_unescape_exactly() {
        let mut s = Scan::new(br#""a\"b\\c\/\n\u00e9\ud83d\ude00""#);
        assert_eq!(s.string().expect("string"), "a\"b\\c/\n\u{e9}\u{1F600}");
        for bad in [
            &br#""abc"#[..],
            br#""\x""#,
            br#""\ud83d""#,
            br#""\u12G4""#,
            b"\"a\x01\"",
        ] {
            assert!(
                Scan::new(bad).string().is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn skipping_balances_brackets_and_strings() {
        let mut s = Scan::new(br#"{"a":[1,{"b":"}]\"["}],"c":null} tail"#);
        s.skip_value().expect("skip");
        assert_eq!(&s.b[s.i..], b" tail");
        for bad in [&b"{\"a\":[}"[..], b"[[[", b"{\"a\":\"}"] {
            assert!(
                Scan::new(bad).skip_value().is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // Depth does not matter (a body nested 200 deep is skipped like any other); balance does.
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(Scan::new(deep.as_bytes()).skip_value().is_ok());
        let unbalanced = "[".repeat(200) + &"]".repeat(199) + "}";
        assert!(Scan::new(unbalanced.as_bytes()).skip_value().is_err());
    }

    /// The 16-byte fast path and the byte-at-a-time path agree at every alignment, with escapes
    /// straddling block edges.
    #[test]
    fn fast_paths_agree_with_the_simple_one() {
        fn simple(b: &[u8], mut i: usize) -> Option<usize> {
            while i < b.len() {
                match b[i] {
                    b'"' => return Some(i + 1),
                    b'\\' => i += 2,
                    _ => i += 1,
                }
            }
            None
        }
        let pieces: [&[u8]; 6] = [b"ab", b"\\\"", b"\\\\", b"\\n", b"{[x]}", b"\\u00e9"];
        let mut seed = 7u64;
        for _ in 0..3000 {
            let mut v = Vec::new();
            for _ in 0..(seed % 150) {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                v.extend_from_slice(pieces[(seed >> 33) as usize % pieces.len()]);
            }
            if !seed.is_multiple_of(3) {
                v.push(b'"');
            }
            v.extend_from_slice(b"tail{}");
            for start in 0..v.len().min(20) {
                assert_eq!(
                    skip_string_body(&v, start),
                    simple(&v, start),
                    "{} from {start}",
                    String::from_utf8_lossy(&v)
                );
                let want = v[start..]
                    .iter()
                    .position(|c| matches!(c, b'"' | b'{' | b'}' | b'[' | b']'))
                    .map(|k| start + k);
                assert_eq!(next_structural(&v, start), want);
            }
        }
    }
}
