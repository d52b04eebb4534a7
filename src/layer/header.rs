//! Tar header fields: numbers (octal and base-256), checksums, PAX records and the
//! encodings inside them. Pure helpers of the parser in the parent module.

use super::{BLOCK, LayerError};

/// Extended header state that applies to the next real entry.
#[derive(Default)]
pub(super) struct Pending {
    pub(super) long_name: Option<Vec<u8>>,
    pub(super) long_link: Option<Vec<u8>>,
    pub(super) pax: Pax,
    /// Where the first extended header of the pending set started.
    pub(super) offset: Option<u64>,
}

#[derive(Default)]
pub(super) struct Pax {
    pub(super) path: Option<Vec<u8>>,
    pub(super) linkpath: Option<Vec<u8>>,
    pub(super) size: Option<u64>,
    pub(super) mtime: Option<(i64, u32)>,
    pub(super) uid: Option<u32>,
    pub(super) gid: Option<u32>,
    pub(super) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    pub(super) sparse: bool,
}

pub(super) fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub(super) fn header_err(offset: u64, why: impl Into<String>) -> LayerError {
    LayerError::Header {
        offset,
        why: why.into(),
    }
}

/// The bytes of a NUL-terminated field.
pub(super) fn cstr(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(i) => &b[..i],
        None => b,
    }
}

/// A numeric header field: octal text, or base-256 when the high bit is set (GNU/star).
pub(super) fn numeric(b: &[u8]) -> Option<i64> {
    if let Some(&first) = b.first()
        && first & 0x80 != 0
    {
        let inv = if first & 0x40 != 0 { 0xff } else { 0 };
        let mut x: u64 = 0;
        for (i, &c) in b.iter().enumerate() {
            let mut c = c ^ inv;
            if i == 0 {
                c &= 0x7f;
            }
            if x >> 56 != 0 {
                return None;
            }
            x = (x << 8) | u64::from(c);
        }
        if x >> 63 != 0 {
            return None;
        }
        let x = x as i64;
        return Some(if inv == 0xff { !x } else { x });
    }
    let t = trim(b);
    if t.is_empty() {
        return Some(0);
    }
    let mut x: i64 = 0;
    for &c in t {
        if !(b'0'..=b'7').contains(&c) {
            return None;
        }
        x = x.checked_mul(8)?.checked_add(i64::from(c - b'0'))?;
    }
    Some(x)
}

pub(super) fn trim(b: &[u8]) -> &[u8] {
    let is_pad = |c: &u8| *c == b' ' || *c == 0;
    let s = b.iter().position(|c| !is_pad(c)).unwrap_or(b.len());
    let e = b.iter().rposition(|c| !is_pad(c)).map_or(s, |i| i + 1);
    &b[s..e.max(s)]
}

pub(super) fn checksum_ok(h: &[u8; BLOCK]) -> bool {
    let Some(want) = numeric(&h[148..156]) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0i64, 0i64);
    for (i, &c) in h.iter().enumerate() {
        let c = if (148..156).contains(&i) { b' ' } else { c };
        unsigned += i64::from(c);
        signed += i64::from(c as i8);
    }
    want == unsigned || want == signed
}

pub(super) fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// A PAX time `[-]secs[.frac]` as (seconds, nanoseconds), nanoseconds in 0..1e9.
pub(super) fn parse_pax_time(v: &[u8]) -> Option<(i64, u32)> {
    let (neg, v) = match v.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (secs, frac) = match v.iter().position(|&c| c == b'.') {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &b""[..]),
    };
    let secs = i64::try_from(parse_decimal(secs)?).ok()?;
    if !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut nsec: u32 = 0;
    for i in 0..9 {
        nsec = nsec * 10 + frac.get(i).map_or(0, |&c| u32::from(c - b'0'));
    }
    if !neg {
        Some((secs, nsec))
    } else if nsec == 0 {
        Some((-secs, 0))
    } else {
        Some((-secs - 1, 1_000_000_000 - nsec))
    }
}

pub(super) fn percent_decode(v: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%'
            && let (Some(h), Some(l)) = (
                v.get(i + 1).copied().and_then(hex),
                v.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(v[i]);
        i += 1;
    }
    out
}

pub(super) fn base64_decode(v: &[u8]) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let v: Vec<u8> = v.iter().copied().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(v.len() * 3 / 4);
    for chunk in v.chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = acc << 6 | val(c)?;
        }
        match chunk.len() {
            4 => out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]),
            3 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
            2 => out.push((acc >> 4) as u8),
            _ => return None,
        }
    }
    Some(out)
}

/// Parses PAX records (`"%d %s=%s\n"`) into `pax`.
pub(super) fn parse_pax(data: &[u8], pax: &mut Pax, offset: u64) -> Result<(), LayerError> {
    let bad = || header_err(offset, "malformed PAX extended header record");
    let mut rest = data;
    while !rest.is_empty() {
        // some writers pad the data with NULs
        if rest.iter().all(|&c| c == 0) {
            break;
        }
        let sp = rest.iter().position(|&c| c == b' ').ok_or_else(bad)?;
        let len = parse_decimal(&rest[..sp]).ok_or_else(bad)? as usize;
        if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(bad());
        }
        let kv = &rest[sp + 1..len - 1];
        rest = &rest[len..];
        let eq = kv.iter().position(|&c| c == b'=').ok_or_else(bad)?;
        let (k, v) = (&kv[..eq], &kv[eq + 1..]);
        let num = |what: &str| {
            parse_decimal(v).ok_or_else(|| {
                header_err(offset, format!("PAX {what} {:?} is not a number", lossy(v)))
            })
        };
        let id = |what: &str| -> Result<Option<u32>, LayerError> {
            if v.is_empty() {
                return Ok(None);
            }
            let n = num(what)?;
            u32::try_from(n)
                .map(Some)
                .map_err(|_| header_err(offset, format!("PAX {what} {n} is out of range")))
        };
        match k {
            b"path" => pax.path = (!v.is_empty()).then(|| v.to_vec()),
            b"linkpath" => pax.linkpath = (!v.is_empty()).then(|| v.to_vec()),
            b"size" => {
                pax.size = if v.is_empty() {
                    None
                } else {
                    Some(num("size")?)
                }
            }
            b"mtime" => {
                pax.mtime = if v.is_empty() {
                    None
                } else {
                    Some(parse_pax_time(v).ok_or_else(|| {
                        header_err(offset, format!("PAX mtime {:?} is not a time", lossy(v)))
                    })?)
                }
            }
            b"uid" => pax.uid = id("uid")?,
            b"gid" => pax.gid = id("gid")?,
            _ if k.starts_with(b"GNU.sparse.") => pax.sparse = true,
            _ => {
                if let Some(name) = k.strip_prefix(b"SCHILY.xattr.") {
                    pax.xattrs.push((name.to_vec(), v.to_vec()));
                } else if let Some(name) = k.strip_prefix(b"LIBARCHIVE.xattr.") {
                    let value = base64_decode(v).ok_or_else(|| {
                        header_err(offset, "LIBARCHIVE.xattr value is not base64")
                    })?;
                    pax.xattrs.push((percent_decode(name), value));
                }
                // other keys (atime, ctime, uname, gname, comment, ...) change nothing here
            }
        }
    }
    Ok(())
}

pub(super) fn pad(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}
