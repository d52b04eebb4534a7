//! HTTP underneath the client: one ureq agent, redirects followed by hand, the retry
//! policy, and the little URL arithmetic the protocol needs (`Location` resolution,
//! query appending, `Link` headers).
//!
//! It knows nothing of registries beyond HTTP. Invariant: an `Authorization` header is
//! only ever sent to the origin (scheme, host, port) it was meant for; a redirect to any
//! other origin (a CDN in front of blob storage) goes out without it.

use std::io::Read;
use std::time::Duration;

use ureq::http::{self, HeaderMap, Method};

/// Redirects followed at most, per request.
const MAX_REDIRECTS: u32 = 8;

/// A body to send. Only [`ReqBody::Stream`] cannot be replayed after a failure.
pub enum ReqBody<'a> {
    Empty,
    Bytes(&'a [u8]),
    Stream(&'a mut (dyn Read + Send)),
}

/// An answer: status, headers, the final URL (after redirects) and the body to read.
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub url: String,
    pub body: ureq::Body,
}

impl Response {
    /// A header's value as text, if present and printable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body, at most `limit` bytes, as text (for error details and small JSON).
    pub fn text(&mut self, limit: u64) -> String {
        let mut out = Vec::new();
        let _ = self
            .body
            .as_reader()
            .take(limit)
            .read_to_end(&mut out)
            .map_err(|_| ());
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Why a request got no answer at all.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{0}")]
    Send(String),
    #[error("too many redirects")]
    Redirects,
    #[error("redirect without a valid Location")]
    BadRedirect,
}

impl TransportError {
    /// Whether trying again may help (the network, not the request, failed).
    pub fn retryable(&self) -> bool {
        matches!(self, TransportError::Send(_))
    }
}

/// One agent for every request of a command (keep-alive connections are pooled).
pub struct Transport {
    agent: ureq::Agent,
}

impl Transport {
    /// `tls_verify = false` accepts any certificate (`--tls-verify=false`).
    pub fn new(tls_verify: bool) -> Transport {
        let tls = ureq::tls::TlsConfig::builder()
            .disable_verification(!tls_verify)
            .build();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .tls_config(tls)
            .accept_encoding(ureq::config::AutoHeaderValue::None)
            .user_agent(concat!("camada/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .timeout_per_read(Some(Duration::from_secs(120)))
            .build()
            .new_agent();
        Transport { agent }
    }

    /// Sends one request, following redirects for GET and HEAD. `auth` is the value of
    /// the `Authorization` header, sent only while the URL stays on the first origin.
    pub fn send(
        &self,
        method: &Method,
        url: &str,
        headers: &[(&str, String)],
        auth: Option<&str>,
        mut body: ReqBody<'_>,
    ) -> Result<Response, TransportError> {
        let first_origin = origin(url).map(str::to_owned);
        let mut url = url.to_owned();
        let follow = *method == Method::GET || *method == Method::HEAD;
        for _ in 0..=MAX_REDIRECTS {
            let same_origin = origin(&url).map(str::to_owned) == first_origin;
            let mut req = http::Request::builder().method(method.clone()).uri(&url);
            for (k, v) in headers {
                req = req.header(*k, v.as_str());
            }
            if let (Some(a), true) = (auth, same_origin) {
                req = req.header("Authorization", a);
            }
            let sent = match &mut body {
                ReqBody::Empty => {
                    let req = req
                        .body(())
                        .map_err(|e| TransportError::Send(e.to_string()))?;
                    self.agent.run(req)
                }
                ReqBody::Bytes(b) => {
                    let req = req
                        .body(*b)
                        .map_err(|e| TransportError::Send(e.to_string()))?;
                    self.agent.run(req)
                }
                ReqBody::Stream(r) => {
                    let req = req
                        .body(ureq::SendBody::from_reader(*r))
                        .map_err(|e| TransportError::Send(e.to_string()))?;
                    self.agent.run(req)
                }
            };
            let resp = sent.map_err(|e| TransportError::Send(describe(&e)))?;
            let status = resp.status().as_u16();
            let (parts, rbody) = resp.into_parts();
            let is_redirect = matches!(status, 301 | 302 | 303 | 307 | 308);
            if follow && is_redirect {
                let loc = parts
                    .headers
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .ok_or(TransportError::BadRedirect)?;
                url = resolve_location(&url, loc).ok_or(TransportError::BadRedirect)?;
                continue;
            }
            return Ok(Response {
                status,
                headers: parts.headers,
                url,
                body: rbody,
            });
        }
        Err(TransportError::Redirects)
    }
}

/// A short, human description of a ureq failure ("connection refused", ...).
fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
            std::io::ErrorKind::ConnectionReset => "connection reset".into(),
            _ => io.to_string(),
        },
        ureq::Error::HostNotFound => "host not found".into(),
        other => other.to_string(),
    }
}

/// `scheme://host[:port]` of an absolute URL.
pub fn origin(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme.is_empty() {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if end == 0 {
        return None;
    }
    Some(&url[..scheme.len() + 3 + end])
}

/// Resolves a `Location` header against the URL it answered: absolute, scheme-relative,
/// absolute-path and relative-path forms, keeping the query exactly as sent.
pub fn resolve_location(base: &str, location: &str) -> Option<String> {
    let location = location.trim();
    if location.is_empty() {
        return None;
    }
    if location.contains("://") {
        return origin(location).map(|_| location.to_owned());
    }
    let base_origin = origin(base)?;
    if let Some(rest) = location.strip_prefix("//") {
        let scheme = base.split_once("://")?.0;
        return Some(format!("{scheme}://{rest}"));
    }
    if location.starts_with('/') {
        return Some(format!("{base_origin}{location}"));
    }
    let path_and_more = &base[base_origin.len()..];
    let path = path_and_more
        .split(['?', '#'])
        .next()
        .filter(|p| !p.is_empty())
        .unwrap_or("/");
    if location.starts_with('?') {
        return Some(format!("{base_origin}{path}{location}"));
    }
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    let dir = if dir.is_empty() { "/" } else { dir };
    Some(format!("{base_origin}{dir}{location}"))
}

/// Appends `key=value` to a URL's query, keeping what is there (`?` or `&`).
pub fn append_query(url: &str, key: &str, value: &str) -> String {
    let (before, fragment) = match url.split_once('#') {
        Some((b, _)) => (b, ""),
        None => (url, ""),
    };
    let sep = if !before.contains('?') {
        "?"
    } else if before.ends_with('?') || before.ends_with('&') {
        ""
    } else {
        "&"
    };
    format!("{before}{sep}{key}={}{fragment}", percent_encode(value))
}

/// Percent-encodes a query value (everything but unreserved characters).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `rel="next"` target of a `Link` header (RFC 8288), as the catalog paginates.
pub fn link_next(header: &str) -> Option<String> {
    for link in header.split(',') {
        let mut parts = link.split(';');
        let target = parts.next()?.trim();
        let target = target.strip_prefix('<')?.strip_suffix('>')?;
        let is_next = parts.any(|p| {
            let p = p.trim();
            let Some((k, v)) = p.split_once('=') else {
                return false;
            };
            k.trim().eq_ignore_ascii_case("rel")
                && v.trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target.to_owned());
        }
    }
    None
}

/// The retry policy: a few attempts with exponential backoff, `Retry-After` honoured
/// (within a bound) for 429 and 503.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included.
    pub attempts: u32,
    /// Wait before the second attempt; doubles each time.
    pub base: Duration,
    /// The longest single wait, `Retry-After` included.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 4,
            base: Duration::from_millis(250),
            max_wait: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// Whether an HTTP status is worth another attempt.
    pub fn retry_status(status: u16) -> bool {
        matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
    }

    /// How long to wait before attempt `attempt + 1` (attempt counts from 1), or `None`
    /// when the attempts are used up. `retry_after` is the header's value, if any.
    pub fn wait(&self, attempt: u32, retry_after: Option<&str>) -> Option<Duration> {
        if attempt >= self.attempts {
            return None;
        }
        let backoff = self
            .base
            .saturating_mul(1u32 << (attempt.saturating_sub(1)).min(16));
        let asked = retry_after
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Some(asked.unwrap_or(backoff).min(self.max_wait))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_of_urls() {
        assert_eq!(
            origin("http://127.0.0.1:5000/v2/x?y"),
            Some("http://127.0.0.1:5000")
        );
        assert_eq!(origin("https://h"), Some("https://h"));
        assert_eq!(origin("https:///x"), None);
        assert_eq!(origin("/v2/"), None);
    }

    #[test]
    fn location_forms() {
        let base = "http://r:5000/v2/app/blobs/uploads/?x=1";
        assert_eq!(
            resolve_location(base, "/v2/app/blobs/uploads/u1?_state=abc").unwrap(),
            "http://r:5000/v2/app/blobs/uploads/u1?_state=abc"
        );
        assert_eq!(
            resolve_location(base, "https://cdn.example/blob?sig=a%2Bb").unwrap(),
            "https://cdn.example/blob?sig=a%2Bb"
        );
        assert_eq!(
            resolve_location(base, "//cdn.example/b").unwrap(),
            "http://cdn.example/b"
        );
        assert_eq!(
            resolve_location(base, "u2?s=1").unwrap(),
            "http://r:5000/v2/app/blobs/uploads/u2?s=1"
        );
        assert_eq!(
            resolve_location("http://r/a/b", "?q").unwrap(),
            "http://r/a/b?q"
        );
        assert_eq!(resolve_location("http://r", "x").unwrap(), "http://r/x");
        assert!(resolve_location(base, "  ").is_none());
        assert!(resolve_location(base, "http:///nohost").is_none());
    }

    #[test]
    fn query_appending_keeps_the_query() {
        let d = "sha256:00ff";
        assert_eq!(
            append_query("http://r/u/1?_state=a", "digest", d),
            "http://r/u/1?_state=a&digest=sha256%3A00ff"
        );
        assert_eq!(
            append_query("http://r/u/1", "digest", d),
            "http://r/u/1?digest=sha256%3A00ff"
        );
        assert_eq!(append_query("http://r/u?", "a", "b"), "http://r/u?a=b");
    }

    #[test]
    fn link_pagination() {
        assert_eq!(
            link_next(r#"</v2/_catalog?last=b&n=2>; rel="next""#).unwrap(),
            "/v2/_catalog?last=b&n=2"
        );
        assert_eq!(
            link_next(r#"<http://a/p1>; rel="prev", <http://a/p3>; rel=next"#).unwrap(),
            "http://a/p3"
        );
        assert!(link_next(r#"</x>; rel="prev""#).is_none());
        assert!(link_next("garbage").is_none());
        assert!(link_next("").is_none());
    }

    #[test]
    fn retry_policy_is_bounded() {
        let p = RetryPolicy::default();
        assert_eq!(p.wait(1, None), Some(Duration::from_millis(250)));
        assert_eq!(p.wait(2, None), Some(Duration::from_millis(500)));
        assert_eq!(p.wait(3, Some("2")), Some(Duration::from_secs(2)));
        assert_eq!(p.wait(1, Some("3600")), Some(Duration::from_secs(10)));
        assert_eq!(
            p.wait(1, Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            Some(p.base)
        );
        assert_eq!(p.wait(4, None), None);
        assert!(RetryPolicy::retry_status(429));
        assert!(RetryPolicy::retry_status(503));
        assert!(!RetryPolicy::retry_status(404));
        assert!(!RetryPolicy::retry_status(401));
    }
}
