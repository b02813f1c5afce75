//! Minimal HTTP/1.1 for the node's own endpoints (`status`, `challenge`, the devnet's shared
//! chain): a client and the request-head reader the servers share. Loopback or operator-run
//! endpoints only, one request per connection.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::Context as _;

/// Send one request; returns the status code and body.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let addr = addr.trim_start_matches("http://").trim_end_matches('/');
    let sock = addr
        .to_socket_addrs()
        .with_context(|| format!("address {addr}"))?
        .next()
        .with_context(|| format!("address {addr} resolves to nothing"))?;
    let mut s = TcpStream::connect_timeout(&sock, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    s.flush()?;
    let mut resp = Vec::new();
    s.take(64 << 20).read_to_end(&mut resp)?;
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("malformed HTTP response")?;
    let head = String::from_utf8_lossy(&resp[..split]);
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("malformed HTTP status line")?;
    Ok((code, resp[split + 4..].to_vec()))
}

/// `GET path`, expecting 200; the body as text.
pub fn get(addr: &str, path: &str, timeout: Duration) -> anyhow::Result<String> {
    let (code, body) = request(addr, "GET", path, &[], timeout)?;
    let text = String::from_utf8_lossy(&body).into_owned();
    anyhow::ensure!(code == 200, "{addr}{path}: HTTP {code}: {}", text.trim());
    Ok(text)
}

/// A request's first line and body length, with the reader positioned at the body.
#[derive(Debug)]
pub struct Head {
    /// `METHOD PATH HTTP/1.1`.
    pub line: String,
    /// `Content-Length` (0 when absent; `usize::MAX` when unreadable).
    pub content_length: usize,
    /// The connection, buffered, at the body.
    pub reader: BufReader<TcpStream>,
}

/// Read a request's head (bounded: 8 KiB per line, 100 headers, 2 s), or `None`.
pub fn read_head(stream: &TcpStream) -> Option<Head> {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.by_ref().take(8192).read_line(&mut line).ok()?;
    let mut header = String::new();
    let mut content_length = 0usize;
    for _ in 0..100 {
        header.clear();
        match reader.by_ref().take(8192).read_line(&mut header) {
            Ok(0) | Err(_) => break,
            Ok(_) if header == "\r\n" || header == "\n" => break,
            Ok(_) => {
                if let Some((k, v)) = header.split_once(':')
                    && k.trim().eq_ignore_ascii_case("content-length")
                {
                    content_length = v.trim().parse().unwrap_or(usize::MAX);
                }
            }
        }
    }
    Some(Head {
        line,
        content_length,
        reader,
    })
}

/// Write a whole response and close.
pub fn respond(mut stream: &TcpStream, status: &str, ctype: &str, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
}
