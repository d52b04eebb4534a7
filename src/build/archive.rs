//! ADD's extras: recognising a local tar archive (plain, gzip, zstd, xz, bzip2, told by
//! magic bytes, and only when what is inside really is a tar, as docker), unpacking it
//! into the COPY layer under a directory, and fetching a URL.
//!
//! Unpacking rewrites headers, never touches the host: entry paths are normalised (`..`
//! cannot climb above the destination) and prefixed with it; hardlink targets too.
//! Invariant: what is not a tar archive is copied as a plain file, never half-unpacked.

use std::io::{self, BufRead, BufReader, Read, Write};

use super::context::{ContextError, Result};
use crate::layer::normalise;

/// How a local archive is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Tar,
    Gzip,
    Zstd,
    Xz,
    Bzip2,
}

/// The biggest download ADD keeps in memory.
const FETCH_LIMIT: u64 = 1 << 30;

fn decoder<'a>(input: impl Read + 'a, format: Format) -> io::Result<Box<dyn Read + 'a>> {
    let input = BufReader::new(input);
    Ok(match format {
        Format::Tar => Box::new(input),
        Format::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Format::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(input)?),
        Format::Xz => Box::new(xz_decoder(input)),
        Format::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(input)),
    })
}

fn xz_decoder<'a>(input: impl BufRead + 'a) -> impl Read + 'a {
    liblzma::bufread::XzDecoder::new_multi_decoder(input)
}

/// Whether the stream is a tar archive (possibly compressed), and how compressed.
pub fn sniff(mut input: impl Read) -> Option<Format> {
    let mut head = Vec::new();
    input.by_ref().take(6).read_to_end(&mut head).ok()?;
    let head = &head[..];
    let format = if head.starts_with(&[0x1f, 0x8b]) {
        Format::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Format::Zstd
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Format::Xz
    } else if head.starts_with(b"BZh") {
        Format::Bzip2
    } else {
        Format::Tar
    };
    let dec = decoder(io::Cursor::new(head.to_vec()).chain(input), format).ok()?;
    let mut block = Vec::new();
    dec.take(512).read_to_end(&mut block).ok()?;
    if block.len() < 512 {
        return None;
    }
    let ustar = &block[257..262] == b"ustar";
    let sum_ok = {
        let stored = std::str::from_utf8(&block[148..156])
            .ok()
            .map(|s| s.trim_matches(|c: char| c == ' ' || c == '\0'))
            .and_then(|s| u32::from_str_radix(s, 8).ok());
        let actual: u32 = block
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u32::from(c)
                }
            })
            .sum();
        stored == Some(actual)
    };
    (ustar && sum_ok).then_some(format)
}

/// Which side of unpacking failed.
pub enum UnpackError {
    Read(io::Error),
    Write(io::Error),
}

/// Re-emits the entries of the archive `input` into `tar` under `dest` (owners, modes and
/// mtimes as the archive has them); returns the number written.
pub fn unpack_into<W: Write>(
    input: impl Read,
    format: Format,
    dest: &[u8],
    tar: &mut tar::Builder<W>,
) -> std::result::Result<u64, UnpackError> {
    let under = |p: &[u8]| -> Vec<u8> {
        let n = normalise(p);
        match (dest.is_empty(), n.is_empty()) {
            (true, _) => n,
            (false, true) => dest.to_vec(),
            (false, false) => [dest, b"/", &n].concat(),
        }
    };
    let dec = decoder(input, format).map_err(UnpackError::Read)?;
    let mut archive = tar::Archive::new(dec);
    let mut count = 0;
    // an entry below one of the archive's own symlinks would be written through the link
    // by whoever extracts the layer: refused, as a path climbing out would be
    let mut links: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
    for entry in archive.entries().map_err(UnpackError::Read)? {
        let mut entry = entry.map_err(UnpackError::Read)?;
        let path = under(&entry.path_bytes());
        if path.is_empty() || path == dest {
            continue; // the destination directory itself is written by the caller
        }
        let mut ancestor = path.as_slice();
        while let Some(i) = ancestor.iter().rposition(|&c| c == b'/') {
            ancestor = &ancestor[..i];
            if links.contains(ancestor) {
                return Err(UnpackError::Read(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "entry {:?} lies under the archive's symlink {:?}",
                        String::from_utf8_lossy(&path),
                        String::from_utf8_lossy(ancestor)
                    ),
                )));
            }
        }
        let src = entry.header();
        let kind = src.entry_type();
        if kind == tar::EntryType::Symlink {
            links.insert(path.clone());
        } else {
            links.remove(&path);
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(src.mode().map_err(UnpackError::Read)? & 0o7777);
        h.set_uid(src.uid().map_err(UnpackError::Read)?);
        h.set_gid(src.gid().map_err(UnpackError::Read)?);
        h.set_mtime(src.mtime().map_err(UnpackError::Read)?);
        h.set_size(0);
        let p = std::path::Path::new(std::ffi::OsStr::from_bytes(&path));
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(entry.size());
                tar.append_data(&mut h, p, &mut entry)
                    .map_err(UnpackError::Write)?;
            }
            tar::EntryType::Directory | tar::EntryType::Fifo => {
                tar.append_data(&mut h, p, io::empty())
                    .map_err(UnpackError::Write)?;
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                let major = src.device_major().ok().flatten().unwrap_or(0);
                let minor = src.device_minor().ok().flatten().unwrap_or(0);
                h.set_device_major(major).map_err(UnpackError::Write)?;
                h.set_device_minor(minor).map_err(UnpackError::Write)?;
                tar.append_data(&mut h, p, io::empty())
                    .map_err(UnpackError::Write)?;
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                let t = std::path::Path::new(std::ffi::OsStr::from_bytes(&target));
                tar.append_link(&mut h, p, t).map_err(UnpackError::Write)?;
            }
            tar::EntryType::Link => {
                let target = under(&entry.link_name_bytes().unwrap_or_default());
                let t = std::path::Path::new(std::ffi::OsStr::from_bytes(&target));
                tar.append_link(&mut h, p, t).map_err(UnpackError::Write)?;
            }
            // extended headers are consumed by the reader; other kinds are skipped
            _ => continue,
        }
        count += 1;
    }
    Ok(count)
}

use std::os::unix::ffi::OsStrExt;

/// What ADD fetched.
pub struct Fetched {
    pub bytes: Vec<u8>,
    /// The file name docker gives it: the URL's last path segment, else `download`.
    pub name: String,
    /// From `Last-Modified`, as docker sets the file's mtime.
    pub mtime: Option<(i64, u32)>,
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 7231's IMF-fixdate) as Unix time.
pub fn parse_http_date(s: &str) -> Option<(i64, u32)> {
    let rest = s.trim().split_once(", ")?.1;
    let f: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = f.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS.iter().position(|x| x == month)? + 1;
    let (d, y): (u32, u32) = (day.parse().ok()?, year.parse().ok()?);
    crate::image::parse_rfc3339(&format!("{y:04}-{m:02}-{d:02}T{time}Z"))
}

/// Fetches `url` (ADD).
pub fn fetch(url: &str) -> Result<Fetched> {
    let err = |e: ureq::Error| ContextError::Fetch {
        url: url.to_owned(),
        source: Box::new(e),
    };
    let mut resp = ureq::get(url).call().map_err(err)?;
    let mtime = resp
        .headers()
        .get("last-modified")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date);
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(FETCH_LIMIT)
        .read_to_vec()
        .map_err(err)?;
    let path = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split(['?', '#'])
        .next()
        .unwrap_or("");
    let name = path
        .split_once('/')
        .map(|(_, p)| p.rsplit('/').next().unwrap_or(""))
        .filter(|n| !n.is_empty() && *n != "." && *n != "..")
        .unwrap_or("download")
        .to_owned();
    Ok(Fetched { bytes, name, mtime })
}
