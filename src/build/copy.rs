//! COPY and ADD: which files land where in the new layer, their content hash (the cache
//! key) and the layer tar itself, written without a container.
//!
//! [`plan_copy`] applies docker's rules: sources relative to the context (or the root of
//! the `--from` image), Go `filepath.Match` wildcards, a directory source copies its
//! contents, a top-level symlink source is followed (inside its tree), symlinks below it
//! are copied as links; several sources need a destination ending in `/`; a relative
//! destination is joined to WORKDIR and resolved through the image's own symlinks
//! (`/bin -> usr/bin`); missing parents are created 0755 (owned by `--chown` or 0:0);
//! context files are owned by 0:0 unless `--chown` (image files keep their owners);
//! `--chmod` sets the bits of what is copied. ADD also unpacks local tar archives
//! (plain, gzip, zstd, xz, bzip2) and fetches URLs (mode 0600, not unpacked).
//! Never writes anywhere but the writer it is given. Invariant: the plan is computed once;
//! the key and the layer both come from it, and a file that changes size between the two
//! is an error, not a corrupt tar.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use super::archive::{self, Format};
use super::context::{Context, ContextError, Result, join};
use super::glob::{Pattern, clean, has_meta};
use super::imagefs::ImageFs;
use super::memo::ContentMemo;
use super::view::{Node, View, resolve};
use crate::digest::{Digest, Hasher};
use crate::tarindex::Kind;

/// Where COPY reads from.
#[derive(Clone, Copy, Debug)]
pub enum Source<'a> {
    /// The build context (files owned by 0:0 unless `--chown`).
    Context(&'a Context),
    /// `COPY --from=stage|image`: an image's files (owners kept unless `--chown`).
    Image(&'a ImageFs),
}

impl<'a> Source<'a> {
    fn view(self) -> &'a dyn View {
        match self {
            Source::Context(c) => c,
            Source::Image(i) => i,
        }
    }
}

/// The flags of a COPY or ADD (after variable expansion).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyOpts {
    /// `--chown=USER[:GROUP]`, names resolved in the destination image.
    pub chown: Option<String>,
    /// `--chmod=OCTAL`.
    pub chmod: Option<String>,
    /// ADD rather than COPY: archives unpacked, URLs fetched.
    pub add: bool,
}

/// Where one entry's bytes come from.
#[derive(Clone, Debug)]
enum Data {
    /// Directories, symlinks, devices.
    None,
    /// A regular file of the source view, at this path.
    Source(Vec<u8>),
    /// A hardlink to an earlier entry of this layer.
    Link(Vec<u8>),
    /// Fetched bytes (ADD of a URL).
    Bytes(Vec<u8>),
}

#[derive(Clone, Debug)]
struct Item {
    node: Node,
    data: Data,
}

/// A local archive of the source view unpacked under `dest` (ADD).
#[derive(Clone, Debug)]
struct Unpack {
    dest: Vec<u8>,
    src: Vec<u8>,
    node: Node,
    format: Format,
}

/// What a COPY or ADD writes, entry by entry, sorted by path (parents first).
#[derive(Debug)]
pub struct CopyPlan<'a> {
    op: &'static str,
    view: &'a dyn View,
    items: BTreeMap<Vec<u8>, Item>,
    /// Written after the entries, in the order given.
    archives: Vec<Unpack>,
}

impl std::fmt::Debug for dyn View + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn now() -> (i64, u32) {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or((0, 0), |d| {
            (i64::try_from(d.as_secs()).unwrap_or(0), d.subsec_nanos())
        })
}

fn dir_node(mode: u32, owner: (u32, u32), mtime: (i64, u32)) -> Node {
    Node {
        kind: Kind::Dir,
        mode,
        uid: owner.0,
        gid: owner.1,
        size: 0,
        mtime,
        link: Vec::new(),
        identity: (0, 0),
        nlink: 1,
        rdev: 0,
        ctime: (0, 0),
    }
}

/// `--chmod`: octal bits (at most 07777).
pub fn parse_chmod(s: &str) -> Result<u32> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777 && !s.is_empty())
        .ok_or_else(|| ContextError::BadChmod(s.to_owned()))
}

/// Looks `name` up in a passwd/group style file: the numeric fields at `fields` of its line.
fn lookup_db(db: &[u8], name: &str, field: usize) -> Option<(u32, Option<u32>)> {
    for line in db.split(|&b| b == b'\n') {
        let parts: Vec<&[u8]> = line.split(|&b| b == b':').collect();
        if parts.first() != Some(&name.as_bytes()) {
            continue;
        }
        let num = |i: usize| {
            parts
                .get(i)
                .and_then(|f| std::str::from_utf8(f).ok())
                .and_then(|f| f.trim().parse::<u32>().ok())
        };
        return Some((num(field)?, num(field + 1)));
    }
    None
}

/// `--chown=USER[:GROUP]` as numbers: names are looked up in the destination image's
/// `/etc/passwd` and `/etc/group`; a user without a group gets the user's primary group
/// (a numeric user alone: the same number as gid, as BuildKit).
pub fn resolve_chown(spec: &str, lower: &ImageFs) -> Result<(u32, u32)> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() || group == Some("") {
        return Err(ContextError::BadChown(spec.to_owned()));
    }
    const DB_LIMIT: u64 = 16 << 20;
    let (uid, primary) = match user.parse::<u32>() {
        Ok(n) => (n, n),
        Err(_) => {
            let passwd = lower
                .read_file(b"etc/passwd", DB_LIMIT)?
                .unwrap_or_default();
            match lookup_db(&passwd, user, 2) {
                Some((uid, Some(gid))) => (uid, gid),
                _ => return Err(ContextError::UnknownUser(user.to_owned())),
            }
        }
    };
    let gid = match group {
        None => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                let groups = lower.read_file(b"etc/group", DB_LIMIT)?.unwrap_or_default();
                lookup_db(&groups, g, 2)
                    .map(|(gid, _)| gid)
                    .ok_or_else(|| ContextError::UnknownGroup(g.to_owned()))?
            }
        },
    };
    Ok((uid, gid))
}

/// The destination as a path from the image root, and whether it names a directory.
fn dest_path(dest: &str, workdir: &str) -> (Vec<u8>, bool) {
    let is_dir = dest.ends_with('/') || dest == "." || dest.ends_with("/.");
    let full = if dest.starts_with('/') {
        dest.to_owned()
    } else {
        format!("{}/{dest}", if workdir.is_empty() { "/" } else { workdir })
    };
    let c = clean(full.as_bytes());
    let rel = c.strip_prefix(b"/").unwrap_or(&c).to_vec();
    (rel, is_dir)
}

/// The paths of the source view matching `pattern` (relative, cleaned), component by
/// component as BuildKit's wildcard resolution does.
fn expand(view: &dyn View, op: &'static str, pattern: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut found: Vec<Vec<u8>> = vec![Vec::new()];
    for comp in pattern.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        if !has_meta(comp) {
            for base in found {
                next.push(join(&base, comp));
            }
        } else {
            let pat = Pattern::new(comp, false).map_err(|_| ContextError::BadPattern {
                op,
                pattern: lossy(pattern),
            })?;
            for base in found {
                let r = resolve(view, op, &base, true)?;
                if r.node.as_ref().is_none_or(|n| n.kind != Kind::Dir) {
                    continue;
                }
                for (name, _) in view.children(&r.path)? {
                    if pat.matches(&name) {
                        next.push(join(&base, &name));
                    }
                }
            }
        }
        found = next;
    }
    Ok(found)
}

/// Plans a COPY (or ADD with `opts.add`) of `srcs` to `dest` (relative to `workdir`),
/// reading `source`; `lower` is the stage's filesystem so far, where the destination is
/// resolved and `--chown` names are looked up.
pub fn plan_copy<'a>(
    source: Source<'a>,
    srcs: &[String],
    dest: &str,
    workdir: &str,
    opts: &CopyOpts,
    lower: &ImageFs,
) -> Result<CopyPlan<'a>> {
    let op = if opts.add { "ADD" } else { "COPY" };
    let view = source.view();
    let chown = opts
        .chown
        .as_deref()
        .map(|s| resolve_chown(s, lower))
        .transpose()?;
    let chmod = opts.chmod.as_deref().map(parse_chmod).transpose()?;
    let (dest_rel, dest_is_dir) = dest_path(dest, workdir);
    let dest_r = resolve(lower, op, &dest_rel, true)?;
    let dest_exists_dir = dest_r.node.as_ref().is_some_and(|n| n.kind == Kind::Dir);

    // each source: (name as given, for the destination's file name; resolved path; node)
    let mut found: Vec<(Vec<u8>, Vec<u8>, Node)> = Vec::new();
    let mut urls: Vec<&str> = Vec::new();
    for src in srcs {
        if opts.add && (src.starts_with("http://") || src.starts_with("https://")) {
            urls.push(src);
            continue;
        }
        let cleaned = clean(src.as_bytes());
        if matches!(source, Source::Context(_)) && (cleaned == b".." || cleaned.starts_with(b"../"))
        {
            return Err(ContextError::OutsideContext {
                op,
                path: src.clone(),
            });
        }
        let rel = clean(&[b"/", cleaned.as_slice()].concat());
        let rel = rel.strip_prefix(b"/").unwrap_or(&rel).to_vec();
        let not_found = || match source {
            Source::Context(_) => ContextError::NotFound {
                op,
                path: src.clone(),
            },
            Source::Image(i) => ContextError::NotFoundInImage {
                op,
                image: i.describe(),
                path: src.clone(),
            },
        };
        let paths = if has_meta(&rel) {
            expand(view, op, &rel)?
        } else {
            vec![rel]
        };
        if paths.is_empty() {
            return Err(not_found());
        }
        for p in paths {
            let r = resolve(view, op, &p, true)?;
            let node = r.node.ok_or_else(not_found)?;
            found.push((p, r.path, node));
        }
    }
    if found.len() + urls.len() > 1 && !dest_is_dir {
        return Err(ContextError::DestNotDir { op });
    }

    let mut plan = CopyPlan {
        op,
        view,
        items: BTreeMap::new(),
        archives: Vec::new(),
    };
    let owner = |n: &Node| match (chown, source) {
        (Some(o), _) => o,
        (None, Source::Context(_)) => (0, 0),
        (None, Source::Image(_)) => (n.uid, n.gid),
    };
    let restyle = |mut n: Node| {
        (n.uid, n.gid) = owner(&n);
        if let Some(m) = chmod
            && n.kind != Kind::Symlink
        {
            n.mode = m;
        }
        n
    };
    let into_dir = dest_is_dir || dest_exists_dir;
    for (given, real, node) in found {
        let name = given
            .rsplit(|&b| b == b'/')
            .next()
            .unwrap_or(&given)
            .to_vec();
        if node.kind == Kind::Dir {
            if dest_r.node.as_ref().is_some_and(|n| n.kind != Kind::Dir) {
                return Err(ContextError::DirOntoFile {
                    op,
                    path: format!("/{}", lossy(&dest_r.path)),
                });
            }
            if !dest_exists_dir && !dest_r.path.is_empty() {
                // made like its parents (BuildKit's MkdirAll 0755), not after the source
                let dir = dir_node(0o755, chown.unwrap_or((0, 0)), now());
                plan.items.entry(dest_r.path.clone()).or_insert(Item {
                    node: dir,
                    data: Data::None,
                });
            }
            plan.walk(&real, &dest_r.path, &restyle)?;
            continue;
        }
        if opts.add
            && node.kind == Kind::File
            && let Some(format) = archive::sniff(view.open(&real, &node)?)
        {
            if dest_r.node.as_ref().is_some_and(|n| n.kind != Kind::Dir) {
                return Err(ContextError::ParentNotDir {
                    op,
                    path: format!("/{}", lossy(&dest_r.path)),
                });
            }
            let dir = dest_r
                .node
                .clone()
                .unwrap_or_else(|| dir_node(0o755, chown.unwrap_or((0, 0)), now()));
            if !dest_r.path.is_empty() {
                plan.items.entry(dest_r.path.clone()).or_insert(Item {
                    node: dir,
                    data: Data::None,
                });
            }
            plan.archives.push(Unpack {
                dest: dest_r.path.clone(),
                src: real,
                node,
                format,
            });
            continue;
        }
        let target = if into_dir {
            join(&dest_r.path, &name)
        } else {
            dest_r.path.clone()
        };
        let data = if node.kind == Kind::File {
            Data::Source(real)
        } else {
            Data::None
        };
        plan.items.insert(
            target,
            Item {
                node: restyle(node),
                data,
            },
        );
    }
    for url in urls {
        let archive::Fetched { bytes, name, mtime } = archive::fetch(url)?;
        let target = if into_dir {
            join(&dest_r.path, name.as_bytes())
        } else {
            dest_r.path.clone()
        };
        let node = Node {
            kind: Kind::File,
            mode: chmod.unwrap_or(0o600),
            uid: chown.map_or(0, |o| o.0),
            gid: chown.map_or(0, |o| o.1),
            size: bytes.len() as u64,
            mtime: mtime.unwrap_or_else(now),
            link: Vec::new(),
            identity: (0, 0),
            nlink: 1,
            rdev: 0,
            ctime: (0, 0),
        };
        plan.items.insert(
            target,
            Item {
                node,
                data: Data::Bytes(bytes),
            },
        );
    }
    plan.add_parents(lower, chown.unwrap_or((0, 0)))?;
    plan.link_hardlinks();
    Ok(plan)
}

impl<'a> CopyPlan<'a> {
    /// Adds the entries below the source directory `src` under `dst`.
    fn walk(&mut self, src: &[u8], dst: &[u8], restyle: &dyn Fn(Node) -> Node) -> Result<()> {
        let mut stack = vec![(src.to_vec(), dst.to_vec())];
        // excluded directories entered for a possible exception: kept only if something
        // below them is
        let mut hidden: Vec<Vec<u8>> = Vec::new();
        while let Some((s, d)) = stack.pop() {
            for (name, node) in self.view.children(&s)? {
                let (sc, dc) = (join(&s, &name), join(&d, &name));
                let data = match node.kind {
                    Kind::File => Data::Source(sc.clone()),
                    Kind::Dir => {
                        if self.view.hidden(&sc) {
                            hidden.push(dc.clone());
                        }
                        stack.push((sc.clone(), dc.clone()));
                        Data::None
                    }
                    _ => Data::None,
                };
                self.items.insert(
                    dc,
                    Item {
                        node: restyle(node),
                        data,
                    },
                );
            }
        }
        hidden.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for dir in hidden {
            let below = [dir.as_slice(), b"/"].concat();
            let empty = self
                .items
                .range(below.clone()..)
                .next()
                .is_none_or(|(p, _)| !p.starts_with(&below));
            if empty {
                self.items.remove(&dir);
            }
        }
        Ok(())
    }

    /// Every parent directory of an entry is in the layer: as it is in the image when it
    /// exists there, else new (0755, `owner`).
    fn add_parents(&mut self, lower: &ImageFs, owner: (u32, u32)) -> Result<()> {
        let mut parents: Vec<Vec<u8>> = Vec::new();
        for path in self.items.keys() {
            let mut p = path.as_slice();
            while let Some(i) = p.iter().rposition(|&c| c == b'/') {
                p = &p[..i];
                if self.items.contains_key(p) {
                    break;
                }
                parents.push(p.to_vec());
            }
        }
        let t = now();
        for p in parents {
            if self.items.contains_key(&p) {
                continue;
            }
            let node = match lower.node(&p)? {
                Some(n) if n.kind == Kind::Dir => n,
                _ => dir_node(0o755, owner, t),
            };
            self.items.insert(
                p,
                Item {
                    node,
                    data: Data::None,
                },
            );
        }
        Ok(())
    }

    /// Files of the source that are hardlinks of each other stay hardlinks: the first
    /// name (by path) carries the data, the others link to it.
    fn link_hardlinks(&mut self) {
        let mut first: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
        for (path, item) in self.items.iter_mut() {
            if item.node.kind != Kind::File
                || item.node.nlink < 2
                || !matches!(item.data, Data::Source(_))
            {
                continue;
            }
            match first.get(&item.node.identity) {
                Some(target) => item.data = Data::Link(target.clone()),
                None => {
                    first.insert(item.node.identity, path.clone());
                }
            }
        }
    }

    /// The number of entries the layer will hold (archives count as one).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The paths the layer will hold, sorted (archives: their destination directory).
    pub fn paths(&self) -> impl Iterator<Item = &[u8]> {
        self.items.keys().map(Vec::as_slice)
    }

    fn read_err(&self, path: &[u8], source: io::Error) -> ContextError {
        ContextError::ReadContext {
            path: lossy(path),
            source,
        }
    }

    /// The content hash of the copy: every entry's path, kind, mode, owner, link target,
    /// device and bytes (not mtimes, not host owners). Reads every source file.
    pub fn cache_key(&self) -> Result<Digest> {
        self.cache_key_with(&mut None)
    }

    /// [`cache_key`](Self::cache_key), reading only the context files whose digest `memo`
    /// does not hold for their current `lstat`, and remembering the new ones.
    pub fn cache_key_memo(&self, memo: &mut ContentMemo) -> Result<Digest> {
        self.cache_key_with(&mut Some(memo))
    }

    fn cache_key_with(&self, memo: &mut Option<&mut ContentMemo>) -> Result<Digest> {
        let mut h = Hasher::new();
        let field = |h: &mut Hasher, b: &[u8]| {
            h.update(&(b.len() as u64).to_le_bytes());
            h.update(b);
        };
        field(&mut h, self.op.as_bytes());
        for (path, item) in &self.items {
            let n = &item.node;
            field(&mut h, path);
            field(&mut h, &[n.kind as u8]);
            field(&mut h, &n.mode.to_le_bytes());
            field(&mut h, &n.uid.to_le_bytes());
            field(&mut h, &n.gid.to_le_bytes());
            field(&mut h, &n.link);
            field(&mut h, &n.rdev.to_le_bytes());
            match &item.data {
                Data::None => field(&mut h, b"-"),
                Data::Link(t) => {
                    field(&mut h, b"link");
                    field(&mut h, t);
                }
                Data::Source(src) => {
                    field(&mut h, b"data");
                    field(&mut h, self.content_hash(src, n, memo)?.hex().as_bytes());
                }
                Data::Bytes(b) => {
                    field(&mut h, b"data");
                    field(&mut h, Digest::of(b).hex().as_bytes());
                }
            }
        }
        for a in &self.archives {
            field(&mut h, b"unpack");
            field(&mut h, &a.dest);
            field(
                &mut h,
                self.content_hash(&a.src, &a.node, memo)?.hex().as_bytes(),
            );
        }
        Ok(h.finish())
    }

    /// The digest of a source file's bytes; it must still have its planned size.
    fn content_hash(
        &self,
        src: &[u8],
        n: &Node,
        memo: &mut Option<&mut ContentMemo>,
    ) -> Result<Digest> {
        let key = memo.as_ref().and_then(|_| self.view.memo_key(src, n));
        if let (Some(m), Some(k)) = (memo.as_deref(), &key)
            && let Some(d) = m.get(k, n)
        {
            return Ok(d.clone());
        }
        let mut content = Hasher::new();
        let got = io::copy(&mut self.view.open(src, n)?, &mut content)
            .map_err(|e| self.read_err(src, e))?;
        if got != n.size {
            return Err(ContextError::Changed {
                op: self.op,
                path: lossy(src),
            });
        }
        let digest = content.finish();
        if let (Some(m), Some(k)) = (memo.as_deref_mut(), key) {
            m.put(k, n, digest.clone(), now().0);
        }
        Ok(digest)
    }

    /// Writes the layer: an uncompressed OCI layer tar with exactly the planned entries
    /// (mtimes of the sources kept, hardlinks kept), archives unpacked under their
    /// destination. Returns the number of tar entries.
    pub fn write_layer(&self, out: impl Write) -> Result<u64> {
        let op = self.op;
        let werr = move |source| ContextError::WriteLayer { op, source };
        let mut tar = tar::Builder::new(out);
        let mut count = 0u64;
        for (path, item) in &self.items {
            let n = &item.node;
            let mut h = header(n);
            match &item.data {
                Data::Link(target) => {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_size(0);
                    tar.append_link(&mut h, lossy_path(path), lossy_path(target))
                        .map_err(werr)?;
                }
                Data::Source(src) => {
                    let mut counted = Counted {
                        inner: self.view.open(src, n)?,
                        n: 0,
                    };
                    tar.append_data(&mut h, lossy_path(path), &mut counted)
                        .map_err(|e| {
                            if e.kind() == io::ErrorKind::UnexpectedEof {
                                ContextError::Changed {
                                    op,
                                    path: lossy(src),
                                }
                            } else {
                                werr(e)
                            }
                        })?;
                    if counted.n != n.size {
                        return Err(ContextError::Changed {
                            op,
                            path: lossy(src),
                        });
                    }
                }
                Data::Bytes(b) => {
                    tar.append_data(&mut h, lossy_path(path), &b[..])
                        .map_err(werr)?;
                }
                Data::None if n.kind == Kind::Symlink => {
                    tar.append_link(&mut h, lossy_path(path), lossy_path(&n.link))
                        .map_err(werr)?;
                }
                Data::None => {
                    tar.append_data(&mut h, lossy_path(path), io::empty())
                        .map_err(werr)?;
                }
            }
            count += 1;
        }
        for a in &self.archives {
            let input = self.view.open(&a.src, &a.node)?;
            count +=
                archive::unpack_into(input, a.format, &a.dest, &mut tar).map_err(|source| {
                    match source {
                        archive::UnpackError::Read(source) => ContextError::Archive {
                            path: lossy(&a.src),
                            source,
                        },
                        archive::UnpackError::Write(source) => werr(source),
                    }
                })?;
        }
        tar.into_inner().and_then(|mut w| w.flush()).map_err(werr)?;
        Ok(count)
    }
}

fn lossy_path(b: &[u8]) -> &std::path::Path {
    std::path::Path::new(std::ffi::OsStr::from_bytes(b))
}

use std::os::unix::ffi::OsStrExt;

/// The tar header of a planned entry (size, type, owner, mode, mtime, device).
fn header(n: &Node) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(n.mode & 0o7777);
    h.set_uid(u64::from(n.uid));
    h.set_gid(u64::from(n.gid));
    h.set_mtime(u64::try_from(n.mtime.0).unwrap_or(0));
    h.set_size(0);
    h.set_entry_type(match n.kind {
        Kind::Dir => tar::EntryType::Directory,
        Kind::Symlink => tar::EntryType::Symlink,
        Kind::Char => tar::EntryType::Char,
        Kind::Block => tar::EntryType::Block,
        Kind::Fifo => tar::EntryType::Fifo,
        Kind::File | Kind::Hardlink | Kind::Whiteout => tar::EntryType::Regular,
    });
    if n.kind == Kind::File {
        h.set_size(n.size);
    }
    if matches!(n.kind, Kind::Char | Kind::Block) {
        let major = ((n.rdev >> 8) & 0xfff) | ((n.rdev >> 32) & !0xfff);
        let minor = (n.rdev & 0xff) | ((n.rdev >> 12) & !0xff);
        let _ = h.set_device_major(major as u32);
        let _ = h.set_device_minor(minor as u32);
    }
    h
}

/// Counts what is read, and stops at the size planned: a file that grew is cut to its
/// planned size (the hash saw that many bytes), one that shrank is detected.
struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        Ok(k)
    }
}
