//! `ember-serve healthcheck`: probe `/health/ready` and exit 0 only on a 2xx answer.
//!
//! Distroless images have no shell and no curl, so a Docker `HEALTHCHECK` has to exec the
//! server binary itself. This is a plain-HTTP/1.1 GET over loopback; it needs nothing else.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{0}: only http:// URLs are supported")]
    Scheme(String),
    #[error("{0}: no address")]
    NoAddress(String),
    #[error("{target}: {source}")]
    Io {
        target: String,
        source: std::io::Error,
    },
    #[error("{0}: not an HTTP answer")]
    NotHttp(String),
    #[error("{url} answered {status}")]
    Status { url: String, status: u16 },
}

/// GET `url` (plain `http://host:port/path`) and succeed on a 2xx status.
pub fn probe(url: &str, timeout: Duration) -> Result<(), ProbeError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| ProbeError::Scheme(url.to_string()))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let io = |target: &dyn std::fmt::Display| {
        let target = target.to_string();
        move |source| ProbeError::Io { target, source }
    };
    let addr = authority
        .to_socket_addrs()
        .map_err(io(&authority))?
        .next()
        .ok_or_else(|| ProbeError::NoAddress(authority.to_string()))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(io(&addr))?;
    stream.set_read_timeout(Some(timeout)).map_err(io(&addr))?;
    stream.set_write_timeout(Some(timeout)).map_err(io(&addr))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .map_err(io(&addr))?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).map_err(io(&addr))?;
    let line = String::from_utf8_lossy(&head[..n]);
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ProbeError::NotHttp(url.to_string()))?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(ProbeError::Status {
            url: url.to_string(),
            status,
        })
    }
}
