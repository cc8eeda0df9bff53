//! The lexer: query text to tokens with byte spans. Regular expressions (`/.../`) are read on the
//! parser's request, where one may stand, since `/` alone is also division.

use super::ast::Span;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A field or keyword: letters, digits, `_`, `.`, `@`, `$`; or any text between backquotes.
    Ident {
        text: String,
        quoted: bool,
    },
    Number(f64),
    /// A number with a time unit: milliseconds.
    Duration(i64),
    Str(String),
    Pipe,
    Comma,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Matches,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    End,
}

impl Tok {
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident { text, .. } => format!("`{text}`"),
            Tok::Number(n) => format!("the number {n}"),
            Tok::Duration(_) => "a duration".into(),
            Tok::Str(_) => "a string".into(),
            Tok::Pipe => "`|`".into(),
            Tok::Comma => "`,`".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::LBracket => "`[`".into(),
            Tok::RBracket => "`]`".into(),
            Tok::Eq => "`=`".into(),
            Tok::Ne => "`!=`".into(),
            Tok::Lt => "`<`".into(),
            Tok::Le => "`<=`".into(),
            Tok::Gt => "`>`".into(),
            Tok::Ge => "`>=`".into(),
            Tok::Matches => "`=~`".into(),
            Tok::Plus => "`+`".into(),
            Tok::Minus => "`-`".into(),
            Tok::Star => "`*`".into(),
            Tok::Slash => "`/`".into(),
            Tok::Percent => "`%`".into(),
            Tok::End => "the end of the query".into(),
        }
    }
}

/// A lexing error: where and what.
#[derive(Debug, Clone, PartialEq)]
pub struct LexError {
    pub span: Span,
    pub message: String,
}

pub struct Lexer<'q> {
    src: &'q str,
    pos: usize,
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'@' | b'$')
}

/// Milliseconds per duration unit.
fn unit_ms(unit: &str) -> Option<i64> {
    Some(match unit {
        "ms" => 1,
        "s" | "sec" | "second" | "seconds" => 1000,
        "m" | "min" | "minute" | "minutes" => 60_000,
        "h" | "hr" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        "w" | "week" | "weeks" => 7 * 86_400_000,
        _ => return None,
    })
}

impl<'q> Lexer<'q> {
    pub fn new(src: &'q str) -> Lexer<'q> {
        Lexer { src, pos: 0 }
    }

    fn bytes(&self) -> &'q [u8] {
        self.src.as_bytes()
    }

    /// Skips white space and `#` comments.
    fn skip_trivia(&mut self) {
        let b = self.bytes();
        loop {
            while self.pos < b.len() && b[self.pos].is_ascii_whitespace() {
                self.pos += 1;
            }
            if self.pos < b.len() && b[self.pos] == b'#' {
                while self.pos < b.len() && b[self.pos] != b'\n' {
                    self.pos += 1;
                }
                continue;
            }
            return;
        }
    }

    /// The next token and its span.
    pub fn next(&mut self) -> Result<(Tok, Span), LexError> {
        self.skip_trivia();
        let b = self.bytes();
        let start = self.pos;
        let Some(&c) = b.get(start) else {
            return Ok((Tok::End, start..start));
        };
        let one = |t: Tok, me: &mut Self| {
            me.pos += 1;
            Ok((t, start..start + 1))
        };
        let two = |t: Tok, me: &mut Self| {
            me.pos += 2;
            Ok((t, start..start + 2))
        };
        let next = b.get(start + 1).copied();
        match c {
            b'|' => one(Tok::Pipe, self),
            b',' => one(Tok::Comma, self),
            b'(' => one(Tok::LParen, self),
            b')' => one(Tok::RParen, self),
            b'[' => one(Tok::LBracket, self),
            b']' => one(Tok::RBracket, self),
            b'+' => one(Tok::Plus, self),
            b'-' => one(Tok::Minus, self),
            b'*' => one(Tok::Star, self),
            b'/' => one(Tok::Slash, self),
            b'%' => one(Tok::Percent, self),
            b'=' if next == Some(b'~') => two(Tok::Matches, self),
            b'=' if next == Some(b'=') => two(Tok::Eq, self),
            b'=' => one(Tok::Eq, self),
            b'!' if next == Some(b'=') => two(Tok::Ne, self),
            b'<' if next == Some(b'=') => two(Tok::Le, self),
            b'<' if next == Some(b'>') => two(Tok::Ne, self),
            b'<' => one(Tok::Lt, self),
            b'>' if next == Some(b'=') => two(Tok::Ge, self),
            b'>' => one(Tok::Gt, self),
            b'\'' | b'"' => self.string(c),
            b'`' => {
                let end = b[start + 1..]
                    .iter()
                    .position(|&x| x == b'`')
                    .map(|i| start + 1 + i);
                match end {
                    Some(e) => {
                        self.pos = e + 1;
                        Ok((
                            Tok::Ident {
                                text: self.src[start + 1..e].to_string(),
                                quoted: true,
                            },
                            start..e + 1,
                        ))
                    }
                    None => Err(LexError {
                        span: start..b.len(),
                        message: "a backquoted name is not closed (expected a closing `` ` ``)"
                            .into(),
                    }),
                }
            }
            b'0'..=b'9' => self.number(),
            c if is_ident_char(c) => {
                while self.pos < b.len() && is_ident_char(b[self.pos]) {
                    self.pos += 1;
                }
                Ok((
                    Tok::Ident {
                        text: self.src[start..self.pos].to_string(),
                        quoted: false,
                    },
                    start..self.pos,
                ))
            }
            _ => {
                let ch = self.src[start..].chars().next().unwrap_or('?');
                Err(LexError {
                    span: start..start + ch.len_utf8(),
                    message: format!("unexpected character `{ch}`"),
                })
            }
        }
    }

    fn string(&mut self, quote: u8) -> Result<(Tok, Span), LexError> {
        let b = self.bytes();
        let start = self.pos;
        let mut out = String::new();
        let mut i = start + 1;
        let mut seg = i;
        while i < b.len() {
            match b[i] {
                c if c == quote => {
                    out.push_str(&self.src[seg..i]);
                    self.pos = i + 1;
                    return Ok((Tok::Str(out), start..i + 1));
                }
                b'\\' if i + 1 < b.len() => {
                    out.push_str(&self.src[seg..i]);
                    match b[i + 1] {
                        b'n' => out.push('\n'),
                        b't' => out.push('\t'),
                        b'r' => out.push('\r'),
                        // `\'`, `\"`, `\\`, and anything else: the character itself.
                        _ => {
                            let ch = self.src[i + 1..].chars().next().unwrap_or('\\');
                            out.push(ch);
                            i += ch.len_utf8() - 1;
                        }
                    }
                    i += 2;
                    seg = i;
                }
                _ => i += 1,
            }
        }
        Err(LexError {
            span: start..b.len(),
            message: format!(
                "a string is not closed (expected a closing {})",
                quote as char
            ),
        })
    }

    fn number(&mut self) -> Result<(Tok, Span), LexError> {
        let b = self.bytes();
        let start = self.pos;
        let mut i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        }
        if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
            let mut j = i + 1;
            if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                j += 1;
            }
            if j < b.len() && b[j].is_ascii_digit() {
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                i = j;
            }
        }
        let num_end = i;
        // A unit right after the digits makes a duration (`5m`, `1h`, `30s`).
        let mut u = i;
        while u < b.len() && b[u].is_ascii_alphabetic() {
            u += 1;
        }
        let value: f64 = self.src[start..num_end].parse().map_err(|_| LexError {
            span: start..num_end,
            message: "not a number".into(),
        })?;
        if u > num_end {
            let unit = &self.src[num_end..u];
            return match unit_ms(unit) {
                Some(ms) if value.fract() == 0.0 => {
                    self.pos = u;
                    Ok((Tok::Duration(value as i64 * ms), start..u))
                }
                _ => Err(LexError {
                    span: start..u,
                    message: format!(
                        "`{}` is not a number or a duration (units: ms, s, m, h, d, w)",
                        &self.src[start..u]
                    ),
                }),
            };
        }
        self.pos = num_end;
        Ok((Tok::Number(value), start..num_end))
    }

    /// A regular expression literal whose opening `/` is at `open`; returns its text (with `\/`
    /// unescaped) and its span.
    pub fn regex_from(&mut self, open: usize) -> Result<(String, Span), LexError> {
        let b = self.bytes();
        let mut i = open + 1;
        let mut out = String::new();
        let mut seg = i;
        while i < b.len() {
            match b[i] {
                b'/' => {
                    out.push_str(&self.src[seg..i]);
                    self.pos = i + 1;
                    return Ok((out, open..i + 1));
                }
                b'\\' if b.get(i + 1) == Some(&b'/') => {
                    out.push_str(&self.src[seg..i]);
                    out.push('/');
                    i += 2;
                    seg = i;
                }
                b'\\' => i += 2,
                _ => i += 1,
            }
        }
        Err(LexError {
            span: open..b.len(),
            message: "a regular expression is not closed (expected a closing `/`)".into(),
        })
    }
}
