//! Authentication pieces of the distribution protocol: `WWW-Authenticate` challenges,
//! basic credentials, and the bearer token answer (`token` or `access_token`, expiry).
//!
//! Pure: headers and bodies in, values out; the client does the requests. Invariant: a
//! password only ever leaves this module inside a `Basic` header value.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// A user name and password (or identity token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({:?}, <password>)", self.username)
    }
}

impl Credentials {
    /// The `Authorization` value for basic auth.
    pub fn basic_header(&self) -> String {
        format!("Basic {}", self.encoded())
    }

    /// `base64(user:password)`, as `auth.json` and docker's config.json keep it.
    pub fn encoded(&self) -> String {
        BASE64.encode(format!("{}:{}", self.username, self.password))
    }

    /// Reads the `auth` field of `auth.json` / config.json.
    pub fn decode(encoded: &str) -> Option<Credentials> {
        let raw = BASE64.decode(encoded.trim()).ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (u, p) = text.split_once(':')?;
        Some(Credentials {
            username: u.to_owned(),
            password: p.to_owned(),
        })
    }
}

/// What a registry asks for in a 401's `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic {
        realm: Option<String>,
    },
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Basic realm="x"` or `Bearer realm="https://auth",service="reg",scope="a b"`.
/// Returns `None` for schemes camada does not speak or a bearer without a realm.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = match header.split_once(char::is_whitespace) {
        Some((s, r)) => (s, r),
        None => (header, ""),
    };
    let params = parse_params(rest);
    let get = |k: &str| {
        params
            .iter()
            .find(|(pk, _)| pk.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic {
            realm: get("realm"),
        })
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some(Challenge::Bearer {
            realm: get("realm").filter(|r| !r.is_empty())?,
            service: get("service"),
            scope: get("scope"),
        })
    } else {
        None
    }
}

/// `k=v, k="quoted, with \" escapes"` pairs.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() && chars.peek().is_none() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                value.push(n);
                            }
                        }
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
                value = value.trim().to_owned();
            }
        }
        let key = key.trim().to_owned();
        if !key.is_empty() {
            out.push((key, value));
        }
        if chars.peek().is_none() {
            break;
        }
    }
    out
}

/// A token server's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub value: String,
    /// How long it is good for, if the server said.
    pub expires_in: Option<Duration>,
}

#[derive(serde::Deserialize)]
struct TokenJson {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Parses a token answer: `token` or `access_token` (either may be the only one), and
/// `expires_in` in seconds (the spec's default is 60 when absent).
pub fn parse_token(body: &[u8]) -> Result<Token, String> {
    let j: TokenJson =
        serde_json::from_slice(body).map_err(|e| format!("invalid token answer: {e}"))?;
    let value = j
        .token
        .filter(|t| !t.is_empty())
        .or(j.access_token.filter(|t| !t.is_empty()))
        .ok_or_else(|| "token answer without a token".to_owned())?;
    Ok(Token {
        value,
        expires_in: Some(Duration::from_secs(j.expires_in.unwrap_or(60).max(1))),
    })
}

/// The token request URL: `realm?service=...&scope=...&scope=...`.
pub fn token_url(realm: &str, service: Option<&str>, scopes: &[String]) -> String {
    let mut url = realm.to_owned();
    if let Some(s) = service {
        url = super::transport::append_query(&url, "service", s);
    }
    for s in scopes {
        url = super::transport::append_query(&url, "scope", s);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            }
        );
    }

    #[test]
    fn challenge_variants() {
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#).unwrap(),
            Challenge::Basic {
                realm: Some("Registry Realm".into())
            }
        );
        assert_eq!(
            parse_challenge("basic").unwrap(),
            Challenge::Basic { realm: None }
        );
        // unquoted values, spaces after commas, escaped quotes, a comma in a scope list
        assert_eq!(
            parse_challenge(
                r#"bearer realm=http://127.0.0.1:1/t, scope="repository:a:pull,push", service="s\"x""#
            )
            .unwrap(),
            Challenge::Bearer {
                realm: "http://127.0.0.1:1/t".into(),
                service: Some("s\"x".into()),
                scope: Some("repository:a:pull,push".into()),
            }
        );
        assert!(parse_challenge(r#"Bearer service="x""#).is_none());
        assert!(parse_challenge("Negotiate abc").is_none());
        assert!(parse_challenge("").is_none());
        assert!(parse_challenge(r#"Bearer realm="unterminated"#).is_some());
    }

    #[test]
    fn token_answers() {
        let t = parse_token(br#"{"token":"abc","expires_in":300}"#).unwrap();
        assert_eq!(t.value, "abc");
        assert_eq!(t.expires_in, Some(Duration::from_secs(300)));
        let t = parse_token(br#"{"access_token":"xyz"}"#).unwrap();
        assert_eq!(t.value, "xyz");
        assert_eq!(t.expires_in, Some(Duration::from_secs(60)));
        let t = parse_token(br#"{"token":"","access_token":"z"}"#).unwrap();
        assert_eq!(t.value, "z");
        assert!(parse_token(br#"{"expires_in":3}"#).is_err());
        assert!(parse_token(b"<html>").is_err());
    }

    #[test]
    fn basic_credentials_round_trip() {
        let c = Credentials {
            username: "bench".into(),
            password: "pa:ss".into(),
        };
        assert_eq!(c.basic_header(), "Basic YmVuY2g6cGE6c3M=");
        assert_eq!(Credentials::decode(&c.encoded()).unwrap(), c);
        assert!(Credentials::decode("!!!").is_none());
        assert!(Credentials::decode("bm9jb2xvbg==").is_none()); // "nocolon"
        assert!(!format!("{c:?}").contains("pa:ss"));
    }

    #[test]
    fn token_request_url() {
        assert_eq!(
            token_url(
                "https://auth/token",
                Some("reg"),
                &[
                    "repository:a/b:pull,push".into(),
                    "repository:c:pull".into()
                ]
            ),
            "https://auth/token?service=reg&scope=repository%3Aa%2Fb%3Apull%2Cpush&scope=repository%3Ac%3Apull"
        );
    }
}
