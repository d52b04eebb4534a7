//! Pushing blobs: HEAD each one, mount it from another repository of the same registry
//! when one is known to hold it, else upload it (POST then PUT with the bytes for small
//! blobs, POST, a streaming PATCH, then PUT for large ones), a few threads at a time.
//!
//! Bytes come from a [`BlobSource`] (the engine's view of the store), sent exactly as
//! stored, so digests never change. Invariant: every upload URL is the registry's
//! `Location`, resolved exactly (relative or absolute, its query kept), and the digest
//! is appended to that query, never substituted for it.

use std::io::{self, Read};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

use ureq::http::Method;

use super::RegistryError;
use super::client::{Client, Mounted};
use super::pull::{LayerEvent, Progress};
use super::transport::{self, ReqBody};
use crate::digest::Digest;

/// Blobs up to this size go up in one PUT (replayable on a retry); larger ones stream.
pub const MONOLITHIC_MAX: u64 = 1024 * 1024;

/// A blob to push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushBlob {
    pub digest: Digest,
    pub size: u64,
    /// Repositories of the same registry known to hold it (try a mount from these).
    pub mount_from: Vec<String>,
}

/// Where pushed bytes come from.
pub trait BlobSource: Sync {
    /// The blob's bytes from the start, exactly as stored.
    fn open(&self, digest: &Digest) -> io::Result<Box<dyn Read + Send>>;
}

/// What happened to one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    Existed,
    MountedFrom(String),
    Uploaded,
}

/// Pushes `blobs` to `repository` with `threads` workers; outcomes in `blobs`' order.
pub fn push_blobs(
    client: &Client,
    repository: &str,
    blobs: &[PushBlob],
    source: &dyn BlobSource,
    threads: usize,
    progress: &dyn Progress,
) -> Result<Vec<PushOutcome>, RegistryError> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Result<PushOutcome, RegistryError>>>> =
        Mutex::new(blobs.iter().map(|_| None).collect());
    for b in blobs {
        progress.layer(&b.digest, LayerEvent::Waiting);
    }
    thread::scope(|s| {
        for _ in 0..threads.clamp(1, 16).min(blobs.len().max(1)) {
            s.spawn(|| {
                loop {
                    if failed.load(Ordering::Relaxed) {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(blob) = blobs.get(i) else { return };
                    let r = push_one(client, repository, blob, source, progress);
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    let mut slots = results.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(slot) = slots.get_mut(i) {
                        *slot = Some(r);
                    }
                }
            });
        }
    });
    let mut out = Vec::with_capacity(blobs.len());
    for (r, b) in results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .zip(blobs)
    {
        match r {
            Some(r) => out.push(r?),
            None => {
                return Err(RegistryError::Upload {
                    digest: b.digest.clone(),
                    reason: "not pushed: an earlier blob failed".into(),
                });
            }
        }
    }
    Ok(out)
}

fn push_one(
    client: &Client,
    repository: &str,
    blob: &PushBlob,
    source: &dyn BlobSource,
    progress: &dyn Progress,
) -> Result<PushOutcome, RegistryError> {
    if client.has_blob(repository, &blob.digest)? {
        progress.layer(&blob.digest, LayerEvent::AlreadyExists);
        return Ok(PushOutcome::Existed);
    }
    let mut upload_url = None;
    for from in blob.mount_from.iter().filter(|f| *f != repository) {
        match client.mount_blob(repository, &blob.digest, from) {
            Ok(Mounted::Yes) => {
                progress.layer(&blob.digest, LayerEvent::Mounted);
                return Ok(PushOutcome::MountedFrom(from.clone()));
            }
            Ok(Mounted::Upload(loc)) => {
                upload_url = Some(loc);
                break;
            }
            // a refused mount (e.g. no pull right on the source) falls back to uploading
            Err(_) => continue,
        }
    }
    let policy = client.retry_policy();
    let mut attempt = 1;
    loop {
        let url = match upload_url.take() {
            Some(u) => u,
            None => client.start_upload(repository)?,
        };
        match upload(client, repository, &url, blob, source, progress) {
            Ok(()) => {
                progress.layer(&blob.digest, LayerEvent::Complete);
                return Ok(PushOutcome::Uploaded);
            }
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Retry(reason)) => match policy.wait(attempt, None) {
                Some(w) => {
                    attempt += 1;
                    progress.layer(&blob.digest, LayerEvent::Retrying(attempt));
                    thread::sleep(w);
                }
                None => {
                    return Err(RegistryError::Upload {
                        digest: blob.digest.clone(),
                        reason,
                    });
                }
            },
        }
    }
}

enum Failure {
    Retry(String),
    Fatal(RegistryError),
}

fn upload(
    client: &Client,
    repository: &str,
    url: &str,
    blob: &PushBlob,
    source: &dyn BlobSource,
    progress: &dyn Progress,
) -> Result<(), Failure> {
    let up_err = |reason: String| {
        Failure::Fatal(RegistryError::Upload {
            digest: blob.digest.clone(),
            reason,
        })
    };
    let mut reader = source
        .open(&blob.digest)
        .map_err(|e| up_err(format!("reading it from the store: {e}")))?;
    let digest_s = blob.digest.to_string();
    if blob.size <= MONOLITHIC_MAX {
        let mut bytes = Vec::with_capacity(blob.size as usize);
        reader
            .by_ref()
            .take(MONOLITHIC_MAX + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| up_err(format!("reading it from the store: {e}")))?;
        if bytes.len() as u64 != blob.size || Digest::of(&bytes) != blob.digest {
            return Err(up_err(
                "the stored bytes do not match their digest and size".into(),
            ));
        }
        let put = transport::append_query(url, "digest", &digest_s);
        let headers = [
            ("Content-Type", "application/octet-stream".to_owned()),
            ("Content-Length", blob.size.to_string()),
        ];
        let mut resp = client
            .send(
                "pushing to",
                &Method::PUT,
                &put,
                &headers,
                ReqBody::Bytes(&bytes),
            )
            .map_err(Failure::Fatal)?;
        return finish_status(client, repository, &mut resp, blob);
    }
    let mut counting = Counting {
        inner: reader,
        done: 0,
        total: blob.size,
        digest: &blob.digest,
        progress,
    };
    let headers = [
        ("Content-Type", "application/octet-stream".to_owned()),
        ("Content-Length", blob.size.to_string()),
    ];
    let resp = client.send(
        "pushing to",
        &Method::PATCH,
        url,
        &headers,
        ReqBody::Stream(&mut counting),
    );
    let mut resp = match resp {
        Ok(r) => r,
        Err(e) => return Err(Failure::Retry(e.to_string())),
    };
    if resp.status != 202 && resp.status != 204 {
        if super::transport::RetryPolicy::retry_status(resp.status) {
            return Err(Failure::Retry(format!("registry answered {}", resp.status)));
        }
        return Err(Failure::Fatal(client.fail(
            "pushing to",
            repository,
            &mut resp,
        )));
    }
    let next = client.location(&resp).map_err(Failure::Fatal)?;
    let put = transport::append_query(&next, "digest", &digest_s);
    let headers = [("Content-Length", "0".to_owned())];
    let mut resp = client
        .send("pushing to", &Method::PUT, &put, &headers, ReqBody::Empty)
        .map_err(Failure::Fatal)?;
    finish_status(client, repository, &mut resp, blob)
}

fn finish_status(
    client: &Client,
    repository: &str,
    resp: &mut super::transport::Response,
    blob: &PushBlob,
) -> Result<(), Failure> {
    match resp.status {
        201 | 204 => Ok(()),
        400 => Err(Failure::Fatal(RegistryError::Upload {
            digest: blob.digest.clone(),
            reason: format!("the registry refused it: {}", resp.text(1024).trim()),
        })),
        s if super::transport::RetryPolicy::retry_status(s) => {
            Err(Failure::Retry(format!("registry answered {s}")))
        }
        _ => Err(Failure::Fatal(client.fail("pushing to", repository, resp))),
    }
}

/// Reports upload progress as the transport reads the bytes.
struct Counting<'a> {
    inner: Box<dyn Read + Send>,
    done: u64,
    total: u64,
    digest: &'a Digest,
    progress: &'a dyn Progress,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        self.progress.layer(
            self.digest,
            LayerEvent::Downloading {
                done: self.done,
                total: self.total,
            },
        );
        Ok(n)
    }
}
