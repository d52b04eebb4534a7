//! The OCI distribution client: talking to a registry over HTTP(S), and nothing else.
//!
//! It owns the wire protocol: the transport (plain HTTP for local registries, TLS through
//! ureq's rustls otherwise, redirects followed by hand so `Authorization` never leaves the
//! registry's own origin), authentication (basic, anonymous and credentialed bearer
//! tokens), the retry policy, manifest and blob transfer (pull with HTTP `Range` resume,
//! push with HEAD/skip, cross-repository mount and monolithic or streamed uploads), the
//! catalog, and the credentials file `auth.json`.
//!
//! It never touches the store: pulled bytes go to a [`BlobSink`] and pushed bytes come
//! from a [`BlobSource`], both implemented by `engine` over the store. It never parses
//! image manifests beyond their size and digest: choosing a platform and listing layers
//! is the image model's job, done by the caller.
//!
//! Invariant: every byte handed to a sink is counted against the size the caller
//! declared, and no more than that size is ever read from the network; a sink that
//! returns `Ok` has verified the digest of everything it received.

pub mod auth;
pub mod catalog;
pub mod client;
pub mod credentials;
pub mod pull;
pub mod push;
pub mod transport;

pub use auth::{Challenge, Credentials};
pub use catalog::{SearchResult, catalog, hub_search};
pub use client::{Client, ClientConfig, FetchedManifest, Scope};
pub use credentials::CredentialStore;
pub use pull::{BlobRef, BlobSink, LayerEvent, Progress, pull_blobs};
pub use push::{BlobSource, PushBlob, PushOutcome, push_blobs};

/// The largest manifest or index accepted (as docker and containerd: 4 MiB).
pub const MAX_MANIFEST_SIZE: u64 = 4 * 1024 * 1024;

/// The Accept header of a manifest request: the four manifest kinds camada reads.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// What went wrong talking to a registry. Every message names the registry, repository,
/// reference or blob concerned and, where it helps, what to do.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("connecting to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("manifest for {reference} not found")]
    ManifestNotFound { reference: String },
    #[error("{what} {host}/{repository}: unauthorized: run camada login {host}")]
    Unauthorized {
        what: &'static str,
        host: String,
        repository: String,
    },
    #[error("{what} {host}/{repository}: denied: {detail}")]
    Denied {
        what: &'static str,
        host: String,
        repository: String,
        detail: String,
    },
    #[error("getting a token from {realm}: {reason}")]
    Token { realm: String, reason: String },
    #[error("login to {host} failed: unauthorized")]
    LoginFailed { host: String },
    #[error("{what} {url}: registry answered {status}{detail}")]
    Status {
        what: String,
        url: String,
        status: u16,
        detail: String,
    },
    #[error("manifest for {reference} is larger than {limit} bytes; refused")]
    ManifestTooLarge { reference: String, limit: u64 },
    #[error("manifest for {reference}: digest mismatch: expected {expected}, got {actual}")]
    ManifestDigest {
        reference: String,
        expected: String,
        actual: String,
    },
    #[error("reading the answer of {url}: {reason}")]
    Body { url: String, reason: String },
    #[error("layer {digest}: {reason}")]
    Blob {
        digest: crate::digest::Digest,
        reason: String,
    },
    #[error("pushing blob {digest}: {reason}")]
    Upload {
        digest: crate::digest::Digest,
        reason: String,
    },
    #[error("registry {host}: invalid Location {location:?} in the answer to {url}")]
    Location {
        host: String,
        url: String,
        location: String,
    },
    #[error("{what}: {reason}")]
    Protocol { what: String, reason: String },
    #[error("credentials file {path}: {reason}")]
    Credentials { path: String, reason: String },
    #[error("pull interrupted")]
    Interrupted,
}
