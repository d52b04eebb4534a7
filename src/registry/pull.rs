//! Pulling blobs: a few threads, each taking the next blob, skipping those the sink
//! already has, resuming those it kept part of (HTTP `Range`), retrying after a cut.
//!
//! It never stores anything itself: bytes go to a [`BlobSink`], which verifies them (it
//! sees the whole blob: the kept prefix and what follows). Invariant: a sink is handed
//! exactly `size - offset` bytes for a blob of the declared `size`, or an error; a
//! registry sending more is cut off, one sending less is an error naming the blob.

use std::io::{self, Read};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

use super::RegistryError;
use super::client::Client;
use crate::digest::Digest;

/// A blob to fetch: its digest and the size the manifest gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
}

/// Where pulled bytes go (the engine implements it over the store).
pub trait BlobSink: Sync {
    /// The blob is already complete: skip it.
    fn has(&self, blob: &BlobRef) -> bool;
    /// How many leading bytes of the blob an interrupted transfer kept.
    fn kept(&self, blob: &BlobRef) -> u64;
    /// Takes the blob's bytes from `offset` on (`offset` is either [`BlobSink::kept`] or
    /// 0, meaning: start again). Appends them to what is kept as they are read, and
    /// returns `Ok` only once the whole blob is verified and stored. A digest mismatch
    /// must also drop the kept bytes (they are wrong).
    fn receive(
        &self,
        blob: &BlobRef,
        offset: u64,
        body: &mut dyn Read,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;
}

/// Where a layer is, for progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerEvent {
    Waiting,
    AlreadyExists,
    /// Push: mounted from another repository of the registry.
    Mounted,
    /// Resuming from this many bytes kept by an earlier pull.
    Resuming(u64),
    Downloading {
        done: u64,
        total: u64,
    },
    Verifying,
    Complete,
    /// A cut or server error: attempt number about to start.
    Retrying(u32),
}

/// Receives layer events (from several threads).
pub trait Progress: Sync {
    fn layer(&self, digest: &Digest, event: LayerEvent);
}

/// No progress display.
impl Progress for () {
    fn layer(&self, _: &Digest, _: LayerEvent) {}
}

/// Fetches `blobs` from `repository` into `sink` with `threads` workers. Stops starting
/// new blobs after the first failure, and returns it.
pub fn pull_blobs(
    client: &Client,
    repository: &str,
    blobs: &[BlobRef],
    sink: &dyn BlobSink,
    threads: usize,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<(), RegistryError> {
    for b in blobs {
        progress.layer(&b.digest, LayerEvent::Waiting);
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<RegistryError>> = Mutex::new(None);
    thread::scope(|s| {
        for _ in 0..threads.clamp(1, 16).min(blobs.len().max(1)) {
            s.spawn(|| {
                loop {
                    if failed.load(Ordering::Relaxed) || cancel.load(Ordering::Relaxed) {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(blob) = blobs.get(i) else { return };
                    if let Err(e) = pull_one(client, repository, blob, sink, progress, cancel) {
                        failed.store(true, Ordering::Relaxed);
                        let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                        slot.get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    if cancel.load(Ordering::Relaxed) {
        return Err(RegistryError::Interrupted);
    }
    Ok(())
}

/// One blob, with resume and bounded retries after network failures.
fn pull_one(
    client: &Client,
    repository: &str,
    blob: &BlobRef,
    sink: &dyn BlobSink,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<(), RegistryError> {
    if sink.has(blob) {
        progress.layer(&blob.digest, LayerEvent::AlreadyExists);
        return Ok(());
    }
    let blob_err = |reason: String| RegistryError::Blob {
        digest: blob.digest.clone(),
        reason,
    };
    let policy = client.retry_policy();
    let mut attempt = 1;
    loop {
        let kept = sink.kept(blob);
        let want = if kept >= blob.size { 0 } else { kept };
        let (offset, mut resp) = client.get_blob(repository, &blob.digest, want)?;
        if offset > 0 {
            progress.layer(&blob.digest, LayerEvent::Resuming(offset));
        }
        let mut body = Bounded {
            inner: resp.body.as_reader(),
            done: offset,
            total: blob.size,
            net_error: None,
            digest: &blob.digest,
            progress,
            cancel,
        };
        let result = sink.receive(blob, offset, &mut body);
        let net_error = body.net_error.take();
        match (result, net_error) {
            (Ok(()), _) => {
                progress.layer(&blob.digest, LayerEvent::Complete);
                return Ok(());
            }
            (Err(_), Some(NetError::Cancelled)) => return Err(RegistryError::Interrupted),
            (Err(_), Some(NetError::Io(e))) => match policy.wait(attempt, None) {
                Some(w) => {
                    attempt += 1;
                    progress.layer(&blob.digest, LayerEvent::Retrying(attempt));
                    thread::sleep(w);
                }
                None => return Err(blob_err(format!("download interrupted: {e}"))),
            },
            (Err(_), Some(NetError::TooLong)) => {
                return Err(blob_err(format!(
                    "the registry sent more than the {} bytes the manifest declares",
                    blob.size
                )));
            }
            (Err(e), None) => return Err(blob_err(e.to_string())),
        }
    }
}

enum NetError {
    Io(String),
    TooLong,
    Cancelled,
}

/// The network body as the sink sees it: exactly `total - done` bytes or an error;
/// remembers whether a failure came from the network (worth a resume) or not.
struct Bounded<'a, R> {
    inner: R,
    done: u64,
    total: u64,
    net_error: Option<NetError>,
    digest: &'a Digest,
    progress: &'a dyn Progress,
    cancel: &'a AtomicBool,
}

impl<R: Read> Read for Bounded<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            self.net_error = Some(NetError::Cancelled);
            return Err(io::Error::other("interrupted"));
        }
        if self.done == self.total {
            // the registry must not send more than declared
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe) {
                Ok(0) => Ok(0),
                Ok(_) => {
                    self.net_error = Some(NetError::TooLong);
                    Err(io::Error::other("more bytes than declared"))
                }
                Err(_) => Ok(0), // the bytes are all here; a late close does not matter
            };
        }
        let room = (self.total - self.done).min(buf.len() as u64) as usize;
        match self.inner.read(&mut buf[..room]) {
            Ok(0) => {
                let msg = format!(
                    "connection closed after {} of {} bytes",
                    self.done, self.total
                );
                self.net_error = Some(NetError::Io(msg.clone()));
                Err(io::Error::new(io::ErrorKind::UnexpectedEof, msg))
            }
            Ok(n) => {
                self.done += n as u64;
                self.progress.layer(
                    self.digest,
                    LayerEvent::Downloading {
                        done: self.done,
                        total: self.total,
                    },
                );
                if self.done == self.total {
                    self.progress.layer(self.digest, LayerEvent::Verifying);
                }
                Ok(n)
            }
            Err(e) => {
                self.net_error = Some(NetError::Io(format!(
                    "{e} after {} of {} bytes",
                    self.done, self.total
                )));
                Err(e)
            }
        }
    }
}
