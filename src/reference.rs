//! Image references (`busybox`, `user/app:1.0`, `host:5000/a/b@sha256:…`), parsed and
//! normalised exactly as docker does (distribution/reference: `ParseNormalizedNamed`, then
//! `TagNameOnly`), and image ID prefixes told apart from names.
//!
//! Pure: strings in, [`Reference`] out; no DNS, no registry, no store. The invariant: a
//! [`Reference`] only exists fully normalised and valid (registry never empty and already
//! canonical, `index.docker.io` folded into `docker.io`, Docker Hub official images under
//! `library/`, at least one of tag or digest), so its [`Display`](fmt::Display) form parses
//! back to an equal value. Grammar (distribution/reference `regexp.go`):
//!
//! ```text
//! reference      := name [ ":" tag ] [ "@" digest ]
//! name           := [ domain "/" ] path-component ( "/" path-component )*
//! domain         := ( domain-component ( "." domain-component )* | "[" ipv6 "]" ) [ ":" port ]
//! domain-comp    := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
//! path-component := [a-z0-9]+ ( separator [a-z0-9]+ )*
//! separator      := "." | "_" | "__" | "-"+
//! tag            := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! ```
//!
//! The first component is the registry when it holds a `.` or `:`, is `localhost`, or has
//! an uppercase letter; otherwise the name is on Docker Hub. One deliberate difference:
//! a first component with a `.` that is no valid host name (e.g. `a_b.com/x`) makes docker
//! produce a reference with an empty registry that fails later in obscure ways; here it
//! is refused at once.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::digest::{Digest, DigestError};

/// Docker Hub's name in references.
pub const DOCKER_HUB: &str = "docker.io";
/// Docker Hub's legacy name, folded into [`DOCKER_HUB`].
const LEGACY_DOCKER_HUB: &str = "index.docker.io";
/// The host that actually serves Docker Hub's registry API.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// The namespace of Docker Hub's official images.
const OFFICIAL_PREFIX: &str = "library/";
/// The tag a name without tag or digest gets.
pub const DEFAULT_TAG: &str = "latest";
/// The longest repository path docker accepts (the registry is not counted).
pub const MAX_PATH_LEN: usize = 255;
/// The longest tag.
pub const MAX_TAG_LEN: usize = 128;

/// Why a string is not an image reference. Messages start as docker's do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid reference format: the image name is empty")]
    Empty,
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexName(String),
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    #[error(
        "invalid reference format: {input:?}: registry {domain:?} is not a host name, IPv4 address or [IPv6] address with an optional :port"
    )]
    Domain { input: String, domain: String },
    #[error(
        "invalid reference format: {input:?}: repository {path:?} must be lowercase letters and digits in components separated by '/', each joined inside by '.', '_', '__' or dashes"
    )]
    Path { input: String, path: String },
    #[error(
        "invalid reference format: {input:?}: repository name must not be more than {MAX_PATH_LEN} characters (it has {len})"
    )]
    PathTooLong { input: String, len: usize },
    #[error(
        "invalid reference format: {input:?}: tag {tag:?} must be 1 to {MAX_TAG_LEN} of letters, digits, '_', '.' and '-', not starting with '.' or '-'"
    )]
    Tag { input: String, tag: String },
    #[error(
        "invalid reference format: {input:?}: digest {digest:?} must be ALGORITHM:HEX with at least 32 hex digits"
    )]
    DigestFormat { input: String, digest: String },
    #[error("invalid reference format: {input:?}: {source}")]
    Digest { input: String, source: DigestError },
}

/// A normalised image reference: `registry/repository[:tag][@digest]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// `docker.io`, `localhost:5000`, `[::1]:5000`, `quay.io`... (never empty).
    pub registry: String,
    /// The path inside the registry: `library/busybox`, `user/app`, `a/b/c`.
    pub repository: String,
    /// The tag; `None` only when a digest is given (no implicit `latest` then, as docker).
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parses what a user types, normalised as docker does: a name alone gets `:latest`.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let mut r = Reference::parse_named(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_owned());
        }
        Ok(r)
    }

    /// Parses without adding the default tag: `busybox` gives tag `None` (docker's
    /// `ParseNormalizedNamed`; for filters such as `images busybox` that mean every tag).
    pub fn parse_named(s: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if is_full_hex_id(s) {
            return Err(ReferenceError::HexName(s.to_owned()));
        }
        let (registry, remainder) = split_docker_domain(s);
        let remote = remainder.split(':').next().unwrap_or(&remainder);
        if remote.to_lowercase() != remote {
            return Err(ReferenceError::Uppercase(remote.to_owned()));
        }
        let input = || s.to_owned();

        // remainder := path [":" tag] ["@" digest]; path and tag hold neither ':' nor '@'.
        let (name_tag, digest) = match remainder.split_once('@') {
            Some((nt, d)) => (nt, Some(d)),
            None => (remainder.as_str(), None),
        };
        let (path, tag) = match name_tag.split_once(':') {
            Some((p, t)) => (p, Some(t)),
            None => (name_tag, None),
        };
        if !valid_domain(&registry) {
            return Err(ReferenceError::Domain {
                input: input(),
                domain: registry,
            });
        }
        if !valid_path(path) {
            return Err(ReferenceError::Path {
                input: input(),
                path: path.to_owned(),
            });
        }
        if let Some(t) = tag
            && !valid_tag(t)
        {
            return Err(ReferenceError::Tag {
                input: input(),
                tag: t.to_owned(),
            });
        }
        if let Some(d) = digest
            && !digest_syntax(d)
        {
            return Err(ReferenceError::DigestFormat {
                input: input(),
                digest: d.to_owned(),
            });
        }
        if path.len() > MAX_PATH_LEN {
            return Err(ReferenceError::PathTooLong {
                input: input(),
                len: path.len(),
            });
        }
        let digest = match digest {
            Some(d) => Some(
                d.parse::<Digest>()
                    .map_err(|source| ReferenceError::Digest {
                        input: input(),
                        source,
                    })?,
            ),
            None => None,
        };
        Ok(Reference {
            registry,
            repository: path.to_owned(),
            tag: tag.map(str::to_owned),
            digest,
        })
    }

    /// `registry/repository`: the name without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The name as `docker images` shows it in REPOSITORY: Docker Hub's `docker.io/`
    /// and `library/` dropped (`busybox`, `user/app`, `127.0.0.1:5000/app`).
    /// One deliberate difference from docker (found by fuzzing): a Docker Hub path whose
    /// first component would read as a registry (`docker.io/a.b/c`, `docker.io/localhost/x`)
    /// keeps `docker.io/`, so the familiar form always parses back to the same name.
    pub fn familiar_name(&self) -> String {
        if self.registry != DOCKER_HUB {
            return self.name();
        }
        if let Some(rest) = self.repository.strip_prefix(OFFICIAL_PREFIX)
            && !rest.contains('/')
        {
            return rest.to_owned();
        }
        let first = self.repository.split('/').next().unwrap_or_default();
        if first.contains('.') || first == "localhost" {
            self.name()
        } else {
            self.repository.clone()
        }
    }

    /// The familiar name with `:tag` and `@digest` (`busybox:latest`).
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        self.push_suffix(&mut s);
        s
    }

    /// The same name with `tag` (checked against the tag grammar); a digest is kept.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        if !valid_tag(tag) {
            return Err(ReferenceError::Tag {
                input: self.to_string(),
                tag: tag.to_owned(),
            });
        }
        Ok(Reference {
            tag: Some(tag.to_owned()),
            ..self.clone()
        })
    }

    /// The same name with `digest` instead of any tag (what a pull by tag resolved to).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The host part of the registry, without port or IPv6 brackets.
    pub fn host(&self) -> &str {
        split_host_port(&self.registry).0
    }

    /// Whether docker talks plain HTTP to this registry without being told: loopback
    /// registries (`localhost`, 127.0.0.0/8, `::1`) are insecure by default.
    pub fn plain_http_default(&self) -> bool {
        let host = self.host();
        if host.eq_ignore_ascii_case("localhost") {
            return true;
        }
        if let Ok(v4) = host.parse::<Ipv4Addr>() {
            return v4.is_loopback();
        }
        if let Ok(v6) = host.parse::<Ipv6Addr>() {
            return v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback());
        }
        false
    }

    /// The `host[:port]` to send registry API requests to (`docker.io` is served by
    /// `registry-1.docker.io`).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// The tag or digest to ask a registry's manifest endpoint for (the digest wins).
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_owned(),
        }
    }

    fn push_suffix(&self, s: &mut String) {
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Reference, ReferenceError> {
        Reference::parse(s)
    }
}

impl Serialize for Reference {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Reference {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Reference, D::Error> {
        let s = String::deserialize(d)?;
        Reference::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `s` is a whole image ID: 64 lowercase hex digits, bare or after `sha256:`.
/// (A bare 64-hex string is never a name: docker refuses it as one.)
pub fn full_image_id(s: &str) -> Option<Digest> {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    if is_full_hex_id(hex) {
        Digest::from_hex(hex).ok()
    } else {
        None
    }
}

/// The hex digits if `s` could be an image ID or a prefix of one (1 to 64 lowercase hex
/// digits, optionally after `sha256:`). A short one (`abc`) may also be a name: docker
/// looks for the name first and falls back to the ID prefix.
pub fn image_id_prefix(s: &str) -> Option<&str> {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    let ok = (1..=64).contains(&hex.len())
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    ok.then_some(hex)
}

/// Whether `tag` follows the tag grammar `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    !b.is_empty()
        && b.len() <= MAX_TAG_LEN
        && word(b[0])
        && b[1..].iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

fn is_full_hex_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// docker's `splitDockerDomain`: (registry, the rest), with Docker Hub's defaults applied.
fn split_docker_domain(s: &str) -> (String, String) {
    let Some((first, rest)) = s.split_once('/') else {
        return (DOCKER_HUB.to_owned(), format!("{OFFICIAL_PREFIX}{s}"));
    };
    let (domain, remainder) = if first == LEGACY_DOCKER_HUB {
        (DOCKER_HUB, rest)
    } else if first == "localhost" || first.contains(['.', ':']) || first.to_lowercase() != first {
        (first, rest)
    } else {
        (DOCKER_HUB, s)
    };
    if domain == DOCKER_HUB && !remainder.contains('/') {
        (domain.to_owned(), format!("{OFFICIAL_PREFIX}{remainder}"))
    } else {
        (domain.to_owned(), remainder.to_owned())
    }
}

/// (host, port) of a registry; the host of `[::1]:5000` is `::1`.
fn split_host_port(registry: &str) -> (&str, Option<&str>) {
    if let Some(rest) = registry.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, tail)) => (host, tail.strip_prefix(':')),
            None => (registry, None),
        };
    }
    match registry.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (registry, None),
    }
}

fn valid_domain(d: &str) -> bool {
    let port_ok = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = d.strip_prefix('[') {
        let Some((inner, tail)) = rest.split_once(']') else {
            return false;
        };
        let inner_ok =
            !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
        return inner_ok && (tail.is_empty() || tail.strip_prefix(':').is_some_and(port_ok));
    }
    let (host, port) = match d.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
    };
    port.is_none_or(port_ok) && host.split('.').all(component_ok)
}

fn valid_path(path: &str) -> bool {
    path.split('/').all(valid_path_component)
}

/// `[a-z0-9]+ ( ("." | "_" | "__" | "-"+) [a-z0-9]+ )*`
fn valid_path_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let b = c.as_bytes();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &b[start..i];
        let ok = matches!(sep, b"." | b"_" | b"__") || sep.iter().all(|&x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}`
fn digest_syntax(d: &str) -> bool {
    let Some((alg, hex)) = d.split_once(':') else {
        return false;
    };
    let alg_ok = alg.split(['-', '_', '+', '.']).all(|part| {
        let b = part.as_bytes();
        !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(|x| x.is_ascii_alphanumeric())
    });
    alg_ok && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn ok(s: &str) -> Reference {
        match Reference::parse(s) {
            Ok(r) => r,
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    fn bad(s: &str) -> ReferenceError {
        match Reference::parse(s) {
            Ok(r) => panic!("{s:?} should be refused, got {r}"),
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.starts_with("invalid reference format")
                        || msg.starts_with("invalid repository name"),
                    "{msg}"
                );
                e
            }
        }
    }

    /// (input, normalised Display, familiar form)
    const CASES: &[(&str, &str, &str)] = &[
        (
            "busybox",
            "docker.io/library/busybox:latest",
            "busybox:latest",
        ),
        (
            "busybox:1.36",
            "docker.io/library/busybox:1.36",
            "busybox:1.36",
        ),
        ("user/app", "docker.io/user/app:latest", "user/app:latest"),
        (
            "docker.io/busybox",
            "docker.io/library/busybox:latest",
            "busybox:latest",
        ),
        (
            "docker.io/library/busybox:x",
            "docker.io/library/busybox:x",
            "busybox:x",
        ),
        (
            "index.docker.io/x",
            "docker.io/library/x:latest",
            "x:latest",
        ),
        ("index.docker.io/u/x:1", "docker.io/u/x:1", "u/x:1"),
        (
            "docker.io/library/a/b",
            "docker.io/library/a/b:latest",
            "library/a/b:latest",
        ),
        ("localhost/x", "localhost/x:latest", "localhost/x:latest"),
        (
            "localhost:5000/x",
            "localhost:5000/x:latest",
            "localhost:5000/x:latest",
        ),
        // a single component is never a registry, even with a port-like tag
        (
            "localhost:5000",
            "docker.io/library/localhost:5000",
            "localhost:5000",
        ),
        (
            "localhost",
            "docker.io/library/localhost:latest",
            "localhost:latest",
        ),
        (
            "127.0.0.1:5000/app",
            "127.0.0.1:5000/app:latest",
            "127.0.0.1:5000/app:latest",
        ),
        (
            "[::1]:5000/app:v1",
            "[::1]:5000/app:v1",
            "[::1]:5000/app:v1",
        ),
        ("[::1]/app", "[::1]/app:latest", "[::1]/app:latest"),
        (
            "quay.io/a/b/c",
            "quay.io/a/b/c:latest",
            "quay.io/a/b/c:latest",
        ),
        ("Foo/bar", "Foo/bar:latest", "Foo/bar:latest"),
        ("my-host:1/x", "my-host:1/x:latest", "my-host:1/x:latest"),
        ("x__y", "docker.io/library/x__y:latest", "x__y:latest"),
        ("x---y", "docker.io/library/x---y:latest", "x---y:latest"),
        (
            "a.b_c-d",
            "docker.io/library/a.b_c-d:latest",
            "a.b_c-d:latest",
        ),
        (
            "x:TAG_a.b-c",
            "docker.io/library/x:TAG_a.b-c",
            "x:TAG_a.b-c",
        ),
        ("x:_", "docker.io/library/x:_", "x:_"),
    ];

    #[test]
    fn normalises_like_docker() {
        for (input, full, familiar) in CASES {
            let r = ok(input);
            assert_eq!(r.to_string(), *full, "{input}");
            assert_eq!(r.familiar(), *familiar, "{input}");
            assert_eq!(ok(full), r, "Display of {input} re-parses");
        }
    }

    #[test]
    fn fields_are_split() {
        let r = ok("busybox");
        assert_eq!(r.registry, "docker.io");
        assert_eq!(r.repository, "library/busybox");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert_eq!(r.digest, None);
        assert_eq!(r.name(), "docker.io/library/busybox");
        assert_eq!(r.familiar_name(), "busybox");

        let d = format!("sha256:{HEX}");
        let r = ok(&format!("host:5000/a/b/c:tag@{d}"));
        assert_eq!(r.registry, "host:5000");
        assert_eq!(r.repository, "a/b/c");
        assert_eq!(r.tag.as_deref(), Some("tag"));
        assert_eq!(r.digest.as_ref().map(|d| d.to_string()), Some(d.clone()));
        assert_eq!(r.to_string(), format!("host:5000/a/b/c:tag@{d}"));
        assert_eq!(r.familiar_name(), "host:5000/a/b/c");
        assert_eq!(r.manifest_reference(), d);
        assert_eq!(ok(&r.to_string()), r);
    }

    #[test]
    fn digest_without_implicit_tag() {
        let d = format!("sha256:{HEX}");
        let r = ok(&format!("busybox@{d}"));
        assert_eq!(r.tag, None);
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{d}"));
        assert_eq!(r.familiar(), format!("busybox@{d}"));
        assert_eq!(r.manifest_reference(), d);
        let r = ok(&format!("busybox:1@{d}"));
        assert_eq!(r.tag.as_deref(), Some("1"));
        assert_eq!(r.familiar(), format!("busybox:1@{d}"));
        // parse_named never adds the default tag
        let n = Reference::parse_named("busybox").unwrap();
        assert_eq!(n.tag, None);
        assert_eq!(n.to_string(), "docker.io/library/busybox");
        assert_eq!(ok("busybox").manifest_reference(), "latest");
    }

    #[test]
    fn uppercase_is_refused_with_docker_message() {
        assert_eq!(
            bad("Busybox").to_string(),
            "invalid reference format: repository name (library/Busybox) must be lowercase"
        );
        assert_eq!(
            bad("user/App").to_string(),
            "invalid reference format: repository name (user/App) must be lowercase"
        );
        assert_eq!(
            bad("localhost:5000/Foo:tag").to_string(),
            "invalid reference format: repository name (Foo) must be lowercase"
        );
        // uppercase in the first of several components makes it a registry (as docker)
        assert_eq!(ok("Foo/bar").registry, "Foo");
        // a tag may hold uppercase
        assert_eq!(ok("x:ABC").tag.as_deref(), Some("ABC"));
    }

    #[test]
    fn tag_length_limit() {
        let t128 = "a".repeat(128);
        assert_eq!(ok(&format!("x:{t128}")).tag.as_deref(), Some(t128.as_str()));
        let t129 = "a".repeat(129);
        assert!(matches!(
            bad(&format!("x:{t129}")),
            ReferenceError::Tag { .. }
        ));
        assert!(ok("x").with_tag(&t128).is_ok());
        assert!(ok("x").with_tag(&t129).is_err());
    }

    #[test]
    fn path_length_limit_counts_the_path_only() {
        // 255 characters of path, plus a long registry: accepted (docker counts the path)
        let path = format!("u/{}", "a".repeat(253));
        let r = ok(&format!("{}.example.com/{path}", "r".repeat(60)));
        assert_eq!(r.repository.len(), 255);
        let path = format!("u/{}", "a".repeat(254));
        assert!(matches!(
            bad(&format!("example.com/{path}")),
            ReferenceError::PathTooLong { len: 256, .. }
        ));
        // library/ counts: 248 + 8 = 256
        assert!(matches!(
            bad(&"a".repeat(248)),
            ReferenceError::PathTooLong { .. }
        ));
        ok(&"a".repeat(247));
    }

    #[test]
    fn awkward_names_are_refused() {
        for s in [
            "a//b",
            "a/",
            "/a",
            "x:",
            "x@",
            "-x",
            "x-",
            "x_",
            "_x",
            ".x",
            "x..y",
            "x_.y",
            "x._y",
            "x___y",
            "x.-y",
            "x y",
            "x:.tag",
            "x:-tag",
            "x:ta/g",
            "x:a:b",
            "x@sha256:abc",
            "x@@sha256:abc",
            "host:/x",
            "host:50a/x",
            "-host.com/x",
            "host-.com/x",
            "a_b.com/x",
            "ho..st.com/x",
            "[::1/x",
            "[]:5000/x",
            "[::1]x/x",
            "[g::1]:5000/x",
            "::1/x",
            "x/é",
            "busybox:1.0/foo",
            "localhost:5000/",
        ] {
            bad(s);
        }
        assert_eq!(bad(""), ReferenceError::Empty);
        assert_eq!(
            bad(HEX).to_string(),
            format!("invalid repository name ({HEX}), cannot specify 64-byte hexadecimal strings")
        );
        // 63 hex digits are a valid name
        ok(&HEX[..63]);
    }

    #[test]
    fn bad_digests_name_the_reason() {
        let short = "x@sha256:0123456789abcdef0123456789abcdef";
        assert!(matches!(bad(short), ReferenceError::Digest { .. }));
        let upper = format!("x@sha256:{}", HEX.to_uppercase());
        assert!(matches!(bad(&upper), ReferenceError::Digest { .. }));
        let alg = format!("x@sha512:{HEX}{HEX}");
        let e = bad(&alg);
        assert!(e.to_string().contains("sha512"), "{e}");
        assert!(matches!(
            bad("x@sha256:xyz"),
            ReferenceError::DigestFormat { .. }
        ));
    }

    #[test]
    fn error_messages_name_the_input() {
        let e = bad("a//b").to_string();
        assert!(e.contains("\"a//b\""), "{e}");
        let e = bad("x:-t").to_string();
        assert!(e.contains("\"-t\""), "{e}");
    }

    #[test]
    fn plain_http_for_loopback_only() {
        for (s, plain) in [
            ("localhost/x", true),
            ("localhost:5000/x", true),
            ("127.0.0.1:5000/x", true),
            ("127.1.2.3/x", true),
            ("[::1]:5000/x", true),
            ("[::1]/x", true),
            ("LOCALHOST:5000/x", true),
            ("128.0.0.1:5000/x", false),
            ("192.168.1.2:5000/x", false),
            ("[::2]:5000/x", false),
            ("busybox", false),
            ("quay.io/x", false),
            ("localhost.example.com/x", false),
        ] {
            assert_eq!(ok(s).plain_http_default(), plain, "{s}");
        }
        assert_eq!(ok("[::1]:5000/x").host(), "::1");
        assert_eq!(ok("localhost:5000/x").host(), "localhost");
    }

    #[test]
    fn api_host() {
        assert_eq!(ok("busybox").api_host(), "registry-1.docker.io");
        assert_eq!(ok("index.docker.io/u/x").api_host(), "registry-1.docker.io");
        assert_eq!(ok("localhost:5000/x").api_host(), "localhost:5000");
        assert_eq!(ok("[::1]:5000/x").api_host(), "[::1]:5000");
    }

    #[test]
    fn with_tag_and_digest() {
        let r = ok("busybox:1").with_tag("2").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:2");
        assert!(r.with_tag("").is_err());
        let d = Digest::of(b"x");
        let r = r.with_digest(d.clone());
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{d}"));
    }

    #[test]
    fn image_ids_and_prefixes() {
        assert_eq!(full_image_id(HEX).unwrap().hex(), HEX);
        assert_eq!(full_image_id(&format!("sha256:{HEX}")).unwrap().hex(), HEX);
        assert_eq!(full_image_id(&HEX[..63]), None);
        assert_eq!(full_image_id(&HEX.to_uppercase()), None);
        assert_eq!(image_id_prefix("e3b0"), Some("e3b0"));
        assert_eq!(image_id_prefix("sha256:e3b0"), Some("e3b0"));
        assert_eq!(image_id_prefix(HEX), Some(HEX));
        assert_eq!(image_id_prefix(&format!("{HEX}0")), None);
        assert_eq!(image_id_prefix(""), None);
        assert_eq!(image_id_prefix("sha256:"), None);
        assert_eq!(image_id_prefix("busybox"), None);
        assert_eq!(image_id_prefix("E3B0"), None);
        // `abc` is both a possible ID prefix and a valid name: the caller decides
        assert!(image_id_prefix("abc").is_some() && Reference::parse("abc").is_ok());
    }

    #[test]
    fn serde_uses_the_text_form() {
        let r = ok("user/app:1");
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, "\"docker.io/user/app:1\"");
        assert_eq!(serde_json::from_str::<Reference>(&json).unwrap(), r);
        assert!(serde_json::from_str::<Reference>("\"a//b\"").is_err());
    }

    #[test]
    fn docker_validity_table() {
        for s in [
            "docker/docker",
            "library/debian",
            "index.docker.io/debian",
            "127.0.0.1:5000/library/debian",
            "192.168.0.1",
            "192.168.0.1:80",
            "192.168.0.1:8/debian",
            "[fc00::1]:5000/docker/docker",
            "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
            "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
            "Docker/docker",
            "DOCKER/docker",
            "docker---rules/docker",
            "dock__er/docker",
            "d/docker",
            "xn--n3h.com:18080/foo",
            "test_com/foo",
            "library/foo/bar",
        ] {
            ok(s);
        }
        for s in [
            "https://github.com/docker/docker",
            "-docker.io/docker/docker",
            "docker///docker",
            "docker.io/docker///docker",
            "[fc00::1]",
            "[fc00::1]:5000",
            "fc00::1:5000/debian",
            "[fe80::1%eth0]:5000/debian",
            "[2001:db8:3:4::192.0.2.33]:5000/debian",
            "docker-/docker",
            "____/____",
            "_docker/_docker",
            "dock-.er/docker",
            "docker/",
        ] {
            bad(s);
        }
        assert_eq!(ok("test_com/foo").registry, "docker.io");
        assert_eq!(ok("test_com/foo").repository, "test_com/foo");
        assert_eq!(ok("library/foo/bar").familiar_name(), "library/foo/bar");
        assert_eq!(
            ok("docker.io/other/library").familiar_name(),
            "other/library"
        );
    }

    #[test]
    fn tag_grammar() {
        assert!(valid_tag("a"));
        assert!(valid_tag("_"));
        assert!(valid_tag("1.0-rc_1"));
        assert!(!valid_tag(""));
        assert!(!valid_tag(".a"));
        assert!(!valid_tag("-a"));
        assert!(!valid_tag("a+b"));
        assert!(!valid_tag("a/b"));
    }
}
