//! A small SMTP client for the e-mail channel: `smtps://` (TLS from the first byte) or `smtp://`
//! (STARTTLS when the server offers it), AUTH PLAIN with credentials from environment variables,
//! one message in text and HTML. Credentials never cross the network in clear text: without TLS
//! they are refused, unless the server is on this machine (loopback).

use std::sync::Arc;
use std::time::Duration;

use bedrock_usage_core::meter::base64_encode;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One message to send.
pub struct Mail<'a> {
    pub from: &'a str,
    pub to: &'a [String],
    pub subject: &'a str,
    pub text: &'a str,
    pub html: &'a str,
    /// A header that is the same on every delivery of the same alert.
    pub idempotency: &'a str,
    pub date_rfc2822: String,
}

struct Conn {
    io: BufReader<Box<dyn Io>>,
}

impl Conn {
    /// Reads one reply (all its lines); the code and the last line's text.
    async fn reply(&mut self) -> Result<(u16, String), String> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let n = self
                .io
                .read_line(&mut line)
                .await
                .map_err(|e| format!("reading from the SMTP server: {e}"))?;
            if n == 0 {
                return Err("the SMTP server closed the connection".into());
            }
            let code: u16 = line
                .get(0..3)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("not an SMTP reply: {}", line.trim()))?;
            text.push_str(line.get(4..).unwrap_or("").trim_end());
            text.push('\n');
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok((code, text));
            }
        }
    }

    async fn send(&mut self, line: &str) -> Result<(), String> {
        let w = self.io.get_mut();
        w.write_all(line.as_bytes())
            .await
            .and(w.write_all(b"\r\n").await)
            .and(w.flush().await)
            .map_err(|e| format!("writing to the SMTP server: {e}"))
    }

    /// Sends a command and expects a reply code in `ok`; `what` names it in the error (never
    /// the command itself, which may carry credentials).
    async fn command(&mut self, line: &str, ok: &[u16], what: &str) -> Result<String, String> {
        self.send(line).await?;
        let (code, text) = self.reply().await?;
        if ok.contains(&code) {
            Ok(text)
        } else {
            Err(format!(
                "the SMTP server refused {what}: {code} {}",
                text.trim()
            ))
        }
    }
}

fn tls_connector() -> Result<tokio_rustls::TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(c);
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

async fn tls(stream: Box<dyn Io>, host: &str) -> Result<Box<dyn Io>, String> {
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|_| format!("`{host}` is not a host name for TLS"))?;
    let s = tls_connector()?
        .connect(name, stream)
        .await
        .map_err(|e| format!("TLS with the SMTP server: {e}"))?;
    Ok(Box::new(s))
}

/// Dot-stuffing and CRLF line ends for the DATA section.
fn data_lines(s: &str) -> String {
    s.lines()
        .map(|l| {
            if l.starts_with('.') {
                format!(".{l}\r\n")
            } else {
                format!("{l}\r\n")
            }
        })
        .collect()
}

/// The message: headers, then text and HTML as multipart/alternative.
pub fn render(m: &Mail) -> String {
    let boundary = format!("bedrock-usage-{}", m.idempotency);
    let subject_ascii = m.subject.is_ascii();
    let subject = if subject_ascii {
        m.subject.to_string()
    } else {
        format!("=?UTF-8?B?{}?=", base64_encode(m.subject.as_bytes()))
    };
    format!(
        "From: {from}\nTo: {to}\nSubject: {subject}\nDate: {date}\nMessage-ID: <{id}@bedrock-usage>\nX-Bedrock-Usage-Idempotency-Key: {id}\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"{boundary}\"\n\n--{boundary}\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n{text}\n--{boundary}\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n{html}\n--{boundary}--\n",
        from = m.from,
        to = m.to.join(", "),
        date = m.date_rfc2822,
        id = m.idempotency,
        text = m.text,
        html = m.html,
    )
}

/// Sends `m` through `url` (`smtp://HOST:PORT` or `smtps://HOST:PORT`).
pub async fn send(
    url: &str,
    credentials: Option<(String, String)>,
    m: &Mail<'_>,
    timeout: Duration,
) -> Result<(), String> {
    tokio::time::timeout(timeout, send_inner(url, credentials, m))
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {}s", timeout.as_secs())))
}

async fn send_inner(
    url: &str,
    credentials: Option<(String, String)>,
    m: &Mail<'_>,
) -> Result<(), String> {
    let (implicit_tls, rest) = if let Some(r) = url.strip_prefix("smtps://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("smtp://") {
        (false, r)
    } else {
        return Err("the channel's smtp_url is not smtp:// or smtps://".into());
    };
    let hostport = rest.trim_end_matches('/');
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (
            h.trim_start_matches('[').trim_end_matches(']'),
            p.parse::<u16>()
                .map_err(|_| format!("`{p}` is not a port"))?,
        ),
        None => (hostport, if implicit_tls { 465 } else { 25 }),
    };
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("cannot connect to the SMTP server: {e}"))?;
    let loopback = tcp
        .peer_addr()
        .map(|a| a.ip().is_loopback())
        .unwrap_or(false);
    let _ = tcp.set_nodelay(true);
    let mut stream: Box<dyn Io> = Box::new(tcp);
    let mut secure = false;
    if implicit_tls {
        stream = tls(stream, host).await?;
        secure = true;
    }
    let mut c = Conn {
        io: BufReader::new(stream),
    };
    let (code, text) = c.reply().await?;
    if code != 220 {
        return Err(format!(
            "the SMTP server did not greet: {code} {}",
            text.trim()
        ));
    }
    let mut ehlo = c.command("EHLO bedrock-usage", &[250], "EHLO").await?;
    if !secure && ehlo.lines().any(|l| l.eq_ignore_ascii_case("STARTTLS")) {
        c.command("STARTTLS", &[220], "STARTTLS").await?;
        let plain = c.io.into_inner();
        c = Conn {
            io: BufReader::new(tls(plain, host).await?),
        };
        secure = true;
        ehlo = c.command("EHLO bedrock-usage", &[250], "EHLO").await?;
    }
    if let Some((user, pass)) = credentials {
        if !secure && !loopback {
            return Err("the SMTP server offers no TLS: the credentials are not sent in clear text (use smtps://, or a server with STARTTLS)".into());
        }
        if !ehlo
            .lines()
            .any(|l| l.to_ascii_uppercase().starts_with("AUTH"))
        {
            return Err(
                "the SMTP server offers no AUTH, but username_env and password_env are set".into(),
            );
        }
        let token = base64_encode(format!("\0{user}\0{pass}").as_bytes());
        c.command(&format!("AUTH PLAIN {token}"), &[235], "the credentials")
            .await?;
    }
    c.command(&format!("MAIL FROM:<{}>", m.from), &[250], "the sender")
        .await?;
    for to in m.to {
        c.command(
            &format!("RCPT TO:<{to}>"),
            &[250, 251],
            &format!("the recipient {to}"),
        )
        .await?;
    }
    c.command("DATA", &[354], "DATA").await?;
    let body = data_lines(&render(m));
    {
        let w = c.io.get_mut();
        w.write_all(body.as_bytes())
            .await
            .map_err(|e| format!("writing to the SMTP server: {e}"))?;
    }
    c.command(".", &[250], "the message").await?;
    let _ = c.command("QUIT", &[221], "QUIT").await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_that_start_with_a_dot_are_stuffed() {
        assert_eq!(data_lines("a\n.b\n..c"), "a\r\n..b\r\n...c\r\n");
    }
}
