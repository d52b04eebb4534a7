//! Layer streams: a pulled or loaded layer blob becomes an uncompressed tar plus its index
//! in one pass.
//!
//! [`ingest`] reads a blob (gzip, zstd or plain tar, told apart by magic bytes), hashes the
//! bytes as read (the blob digest), decompresses, writes the tar out while hashing it (the
//! diff_id), and parses the tar headers itself (ustar, GNU long names, PAX) to build the
//! [`tarindex`](crate::tarindex) with exact data offsets. It works on streams handed to it:
//! it never opens a store path, never extracts a file, never resolves a symlink on the host.
//! Invariant: every byte of the decompressed stream reaches `tar_out` and the diff_id exactly
//! once and in order (trailing bytes after the end-of-archive blocks too), so an index offset
//! is an offset in the tar that was written; a tar that cannot be indexed exactly is refused
//! with an error naming the byte offset, never half-indexed.
//!
//! [`diff()`] (in `diff.rs`) goes the other way: an upper dir to a layer tar; [`extract()`]
//! (in `extract.rs`) unpacks a tar safely inside a directory for `cp` and `ADD`.

use std::io::{self, Read, Write};

use crate::digest::{DiffId, Digest, Hasher, HashingReader};
use crate::image::Compression;
use crate::tarindex::{IndexBuilder, IndexError, Kind, NewEntry};
use header::*;

pub mod diff;
pub mod extract;
mod header;
pub use diff::{Entry, Owner, UpperDir, diff, diff_with};
pub use extract::extract;

/// `src` decompressed as `compression` says (a plain tar passes through as it is). Gzip
/// streams of several members are read to the last one, as docker and containerd do.
pub fn decoder<'a, R: io::BufRead + 'a>(
    compression: Compression,
    src: R,
) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(src),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(src)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(src)?),
    })
}

/// What one pass over a layer blob found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ingested {
    /// The digest of the uncompressed tar.
    pub diff_id: DiffId,
    /// The digest of the blob as read (what a manifest names).
    pub compressed: Digest,
    pub compressed_size: u64,
    pub tar_size: u64,
    /// Tar entries recorded in the index (extended headers not counted).
    pub entries: u64,
    pub compression: Compression,
}

/// Why a layer blob cannot be ingested. Offsets are bytes of the uncompressed tar.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error(
        "layer is compressed with {0}, which camada does not read (OCI layers use gzip or zstd)"
    )]
    UnsupportedCompression(&'static str),
    #[error("reading the layer ({compression}) at tar byte {offset}: {source}")]
    Read {
        compression: Compression,
        offset: u64,
        source: io::Error,
    },
    #[error("writing the layer tar: {0}")]
    WriteTar(io::Error),
    #[error("writing the layer index: {0}")]
    WriteIndex(io::Error),
    #[error(
        "truncated layer tar: {what} at byte {offset} ends early (the stream stops at byte {end})"
    )]
    Truncated { what: String, offset: u64, end: u64 },
    #[error("corrupt layer tar: header at byte {offset}: {why}")]
    Header { offset: u64, why: String },
    #[error(
        "layer tar entry {path:?} at byte {offset} is a sparse file, which camada does not support; rebuild the layer without sparse files"
    )]
    Sparse { path: String, offset: u64 },
    #[error(
        "layer tar entry {path:?} at byte {offset} has type {typeflag:?}, which a layer cannot hold"
    )]
    UnsupportedType {
        path: String,
        offset: u64,
        typeflag: char,
    },
    #[error("layer tar entry at byte {offset}: {source}")]
    Index { offset: u64, source: IndexError },
    #[error("extracting {path:?}: {source}")]
    Extract { path: String, source: io::Error },
    #[error("reading {path} for the layer diff: {source}")]
    ReadUpper {
        path: std::path::PathBuf,
        source: io::Error,
    },
}

const BLOCK: usize = 512;
/// Extended headers (PAX records, GNU long names) larger than this are refused.
const MAX_EXTENDED: u64 = 16 << 20;
/// Read size of the decompressed stream. Small under the fuzzer: more runs per second, and
/// headers straddle buffer refills more often.
const CHUNK: usize = if cfg!(fuzzing) { 1024 } else { 256 << 10 };

/// Decompresses, parses and indexes a layer in one streaming pass (see the module doc).
/// `tar_out` receives the uncompressed tar, `idx_out` the index bytes (written at the end).
pub fn ingest<R: Read, T: Write, I: Write>(
    input: R,
    tar_out: T,
    mut idx_out: I,
) -> Result<Ingested, LayerError> {
    let mut hr = HashingReader::new(input);
    let mut head = [0u8; 8];
    let mut n = 0;
    while n < head.len() {
        match hr.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(LayerError::Read {
                    compression: Compression::None,
                    offset: 0,
                    source,
                });
            }
        }
    }
    let compression =
        Compression::detect(&head[..n]).map_err(LayerError::UnsupportedCompression)?;
    let (feed_out, entries, idx) = {
        let src = io::BufReader::with_capacity(CHUNK, (&head[..n]).chain(&mut hr));
        let dec = decoder(compression, src).map_err(|source| LayerError::Read {
            compression,
            offset: 0,
            source,
        })?;
        let mut feed = Feed::new(dec, tar_out, compression);
        let (entries, idx) = index_tar(&mut feed)?;
        feed.drain()?;
        feed.w.flush().map_err(LayerError::WriteTar)?;
        ((feed.hasher, feed.pos), entries, idx)
    };
    // The decompressor may stop before the blob's end (e.g. zeros after a zstd frame):
    // the blob digest still covers every byte.
    io::copy(&mut hr, &mut io::sink()).map_err(|source| LayerError::Read {
        compression,
        offset: feed_out.1,
        source,
    })?;
    let compressed_size = hr.len();
    let (compressed, _) = hr.finish();
    idx_out.write_all(&idx).map_err(LayerError::WriteIndex)?;
    idx_out.flush().map_err(LayerError::WriteIndex)?;
    let (hasher, tar_size) = feed_out;
    Ok(Ingested {
        diff_id: DiffId(hasher.finish()),
        compressed,
        compressed_size,
        tar_size,
        entries,
        compression,
    })
}

/// The decompressed stream: every byte read from `r` is written to `w` and hashed as it
/// is buffered, so parsing only moves a cursor.
struct Feed<R, W> {
    r: R,
    w: W,
    hasher: Hasher,
    compression: Compression,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Absolute tar offset of `buf[start]`.
    pos: u64,
}

impl<R: Read, W: Write> Feed<R, W> {
    fn new(r: R, w: W, compression: Compression) -> Feed<R, W> {
        Feed {
            r,
            w,
            hasher: Hasher::new(),
            compression,
            buf: vec![0; CHUNK],
            start: 0,
            end: 0,
            pos: 0,
        }
    }

    /// Reads more into the (empty) buffer; false at end of stream.
    fn refill(&mut self) -> Result<bool, LayerError> {
        debug_assert_eq!(self.start, self.end);
        self.start = 0;
        self.end = 0;
        loop {
            match self.r.read(&mut self.buf) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    let got = &self.buf[..n];
                    self.w.write_all(got).map_err(LayerError::WriteTar)?;
                    self.hasher.update(got);
                    self.end = n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(LayerError::Read {
                        compression: self.compression,
                        offset: self.pos,
                        source,
                    });
                }
            }
        }
    }

    /// Fills `out` as far as the stream goes; returns how many bytes it got.
    fn read_into(&mut self, out: &mut [u8]) -> Result<usize, LayerError> {
        let mut got = 0;
        while got < out.len() {
            if self.start == self.end && !self.refill()? {
                break;
            }
            let k = (self.end - self.start).min(out.len() - got);
            out[got..got + k].copy_from_slice(&self.buf[self.start..self.start + k]);
            self.start += k;
            self.pos += k as u64;
            got += k;
        }
        Ok(got)
    }

    /// Skips `n` bytes (already written and hashed); returns how many there were.
    fn skip(&mut self, n: u64) -> Result<u64, LayerError> {
        let mut left = n;
        while left > 0 {
            if self.start == self.end && !self.refill()? {
                break;
            }
            let k = ((self.end - self.start) as u64).min(left) as usize;
            self.start += k;
            self.pos += k as u64;
            left -= k as u64;
        }
        Ok(n - left)
    }

    /// Passes the rest of the stream through.
    fn drain(&mut self) -> Result<(), LayerError> {
        loop {
            self.pos += (self.end - self.start) as u64;
            self.start = self.end;
            if !self.refill()? {
                return Ok(());
            }
        }
    }
}

/// Docker's normalisation: the path is cleaned as if absolute, so `..` cannot climb out
/// of the root (`../../etc/x` -> `etc/x`, `/a/./b/` -> `a/b`, `.` -> the root).
pub fn normalise(raw: &[u8]) -> Vec<u8> {
    let mut out: Vec<&[u8]> = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            _ => out.push(c),
        }
    }
    out.join(&b'/')
}

/// Reads the data of an extended header (PAX, GNU long name) with its padding.
fn read_extended<R: Read, W: Write>(
    feed: &mut Feed<R, W>,
    size: i64,
    offset: u64,
) -> Result<Vec<u8>, LayerError> {
    let size = u64::try_from(size)
        .ok()
        .filter(|&s| s <= MAX_EXTENDED)
        .ok_or_else(|| header_err(offset, format!("extended header of {size} bytes")))?;
    let mut data = vec![0; size as usize];
    let got = feed.read_into(&mut data)?;
    let padded = feed.skip(pad(size))?;
    if got < data.len() || padded < pad(size) {
        return Err(LayerError::Truncated {
            what: "extended header".into(),
            offset,
            end: feed.pos,
        });
    }
    Ok(data)
}

/// Parses the tar on `feed` up to its end-of-archive marker, building the index.
fn index_tar<R: Read, W: Write>(feed: &mut Feed<R, W>) -> Result<(u64, Vec<u8>), LayerError> {
    let mut b = IndexBuilder::new();
    let mut pending = Pending::default();
    let mut entries = 0u64;
    let mut h = [0u8; BLOCK];
    loop {
        let off = feed.pos;
        let got = feed.read_into(&mut h)?;
        if got == 0 && pending.offset.is_none() {
            // end of stream on a block boundary without end-of-archive blocks: accepted,
            // as Go's archive/tar (and so docker) does
            break;
        }
        if got < BLOCK {
            return Err(LayerError::Truncated {
                what: if pending.offset.is_some() {
                    "the entry after an extended header".into()
                } else {
                    "header".into()
                },
                offset: pending.offset.unwrap_or(off),
                end: feed.pos,
            });
        }
        if h.iter().all(|&c| c == 0) {
            let got = feed.read_into(&mut h)?;
            if got == 0 || (got == BLOCK && h.iter().all(|&c| c == 0)) {
                break;
            }
            if got < BLOCK {
                return Err(LayerError::Truncated {
                    what: "end-of-archive marker".into(),
                    offset: off,
                    end: feed.pos,
                });
            }
            return Err(header_err(
                off + BLOCK as u64,
                "a header after a single zero block",
            ));
        }
        if !checksum_ok(&h) {
            return Err(header_err(off, "checksum mismatch (not a tar, or corrupt)"));
        }
        let field = |r: std::ops::Range<usize>, what: &str| {
            numeric(&h[r]).ok_or_else(|| header_err(off, format!("invalid {what} field")))
        };
        let typeflag = h[156];
        let size = field(124..136, "size")?;
        pending.offset.get_or_insert(off);
        match typeflag {
            b'x' => {
                let data = read_extended(feed, size, off)?;
                parse_pax(&data, &mut pending.pax, off)?;
                continue;
            }
            b'g' => {
                // global PAX headers are ignored, as docker does
                read_extended(feed, size, off)?;
                pending.offset = None;
                continue;
            }
            b'L' => {
                pending.long_name = Some(cstr(&read_extended(feed, size, off)?).to_vec());
                continue;
            }
            b'K' => {
                pending.long_link = Some(cstr(&read_extended(feed, size, off)?).to_vec());
                continue;
            }
            _ => {}
        }
        let p = std::mem::take(&mut pending);
        let ustar = &h[257..263] == b"ustar\0";
        let gnu = &h[257..265] == b"ustar  \0";
        let raw_name = match (p.pax.path, p.long_name) {
            (Some(n), _) | (None, Some(n)) => n,
            (None, None) => {
                let name = cstr(&h[0..100]);
                let prefix = if ustar { cstr(&h[345..500]) } else { b"" };
                if prefix.is_empty() {
                    name.to_vec()
                } else {
                    [prefix, b"/", name].concat()
                }
            }
        };
        let raw_link = match (p.pax.linkpath, p.long_link) {
            (Some(n), _) | (None, Some(n)) => n,
            (None, None) => cstr(&h[157..257]).to_vec(),
        };
        if typeflag == b'S' || p.pax.sparse {
            return Err(LayerError::Sparse {
                path: lossy(&raw_name),
                offset: off,
            });
        }
        let kind = match typeflag {
            b'0' | b'7' => Kind::File,
            0 if raw_name.ends_with(b"/") => Kind::Dir,
            0 => Kind::File,
            b'1' => Kind::Hardlink,
            b'2' => Kind::Symlink,
            b'3' => Kind::Char,
            b'4' => Kind::Block,
            b'5' => Kind::Dir,
            b'6' => Kind::Fifo,
            t => {
                return Err(LayerError::UnsupportedType {
                    path: lossy(&raw_name),
                    offset: off,
                    typeflag: t as char,
                });
            }
        };
        let size = match p.pax.size {
            Some(s) => s,
            None => u64::try_from(size).map_err(|_| header_err(off, "negative size"))?,
        };
        let data_offset = feed.pos;
        if kind == Kind::File {
            let want = size
                .checked_add(pad(size))
                .ok_or_else(|| header_err(off, "size overflows"))?;
            if feed.skip(want)? < want {
                return Err(LayerError::Truncated {
                    what: format!("data of {:?}", lossy(&raw_name)),
                    offset: data_offset,
                    end: feed.pos,
                });
            }
        }
        let id = |v: Option<u32>, r, what: &str| -> Result<u32, LayerError> {
            match v {
                Some(v) => Ok(v),
                None => {
                    let n = field(r, what)?;
                    u32::try_from(n)
                        .map_err(|_| header_err(off, format!("{what} {n} is out of range")))
                }
            }
        };
        let uid = id(p.pax.uid, 108..116, "uid")?;
        let gid = id(p.pax.gid, 116..124, "gid")?;
        let mode = field(100..108, "mode")?;
        let (mtime, mtime_nsec) = match p.pax.mtime {
            Some(t) => t,
            None => (field(136..148, "mtime")?, 0),
        };
        let (rdev_major, rdev_minor) = if matches!(kind, Kind::Char | Kind::Block) && (ustar || gnu)
        {
            let major = field(329..337, "devmajor")?;
            let minor = field(337..345, "devminor")?;
            (
                u32::try_from(major).map_err(|_| header_err(off, "devmajor out of range"))?,
                u32::try_from(minor).map_err(|_| header_err(off, "devminor out of range"))?,
            )
        } else {
            (0, 0)
        };

        let path = normalise(&raw_name);
        let (parent, base) = match path.iter().rposition(|&c| c == b'/') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => (&b""[..], &path[..]),
        };
        let index_err = |source| LayerError::Index {
            offset: off,
            source,
        };
        // aufs metadata (`.wh..wh.plnk`, `.wh..wh.aufs`) is skipped, as docker does
        let aufs_meta = path
            .split(|&c| c == b'/')
            .any(|c| c.starts_with(b".wh..wh.") && c != b".wh..wh..opq");
        if aufs_meta {
            continue;
        }
        if base == b".wh..wh..opq" {
            b.set_opaque(parent).map_err(index_err)?;
            entries += 1;
            continue;
        }
        let mut e = NewEntry {
            path: path.clone(),
            kind,
            mode: (mode & 0o7777) as u32,
            uid,
            gid,
            mtime,
            mtime_nsec,
            size: if kind == Kind::File { size } else { 0 },
            data_offset: if kind == Kind::File { data_offset } else { 0 },
            link: Vec::new(),
            rdev_major,
            rdev_minor,
            xattrs: p.pax.xattrs,
            opaque: false,
            layer: 0,
        };
        if let Some(name) = base.strip_prefix(b".wh.") {
            if name.is_empty() {
                return Err(index_err(IndexError::BadPath {
                    path: lossy(&path),
                    why: "a whiteout without a name",
                }));
            }
            e.kind = Kind::Whiteout;
            e.size = 0;
            e.data_offset = 0;
            e.path = if parent.is_empty() {
                name.to_vec()
            } else {
                [parent, b"/", name].concat()
            };
        } else {
            match kind {
                Kind::Symlink => e.link = raw_link,
                Kind::Hardlink => e.link = normalise(&raw_link),
                _ => {}
            }
        }
        b.add(e).map_err(index_err)?;
        entries += 1;
    }
    Ok((entries, b.finish()))
}

#[cfg(test)]
mod tests;
