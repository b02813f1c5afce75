//! A minimal HTTP/1.1 client for the node's own API (`status`, `challenge`, the devnet):
//! loopback or operator-run endpoints only, one request per connection.

use std::io::{Read as _, Write as _};
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
