//! The fixtures base image (fixtures/mkbase), built once per test run.
//!
//! Owns: running the script into `target/tmp/fixtures/base-<key>/`, where the key hashes the
//! script and the busybox binary it packs, so a change to either makes a fresh image and an
//! unchanged pair is reused across runs. The directory appears by rename only when complete,
//! so parallel test binaries never see half an image. Never writes into the source tree.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use camada::digest::{Digest, Hasher};

/// What fixtures/mkbase made.
pub struct BaseImage {
    /// The directory holding everything below.
    pub dir: PathBuf,
    /// The OCI archive (`camada load -i`).
    pub oci_tar: PathBuf,
    /// The same OCI layout as a directory (skopeo `oci:DIR:latest`, umoci `DIR:latest`).
    pub oci_dir: PathBuf,
    /// The root filesystem as a plain tar (`camada import`); also the layer's uncompressed tar.
    pub rootfs_tar: PathBuf,
    /// The image ID: the config's digest.
    pub image_id: Digest,
    /// The one layer's diff_id (sha256 of rootfs.tar).
    pub diff_id: Digest,
}

impl BaseImage {
    /// The name the OCI archive gives it, as the user types it.
    pub const NAME: &'static str = "base:latest";
    /// The same, normalised as docker does.
    pub const FULL_NAME: &'static str = "docker.io/library/base:latest";
    /// The OCI ref name in its index.json (what skopeo and umoci select by).
    pub const REF_NAME: &'static str = "latest";
    /// The image's Cmd.
    pub const CMD: &'static [&'static str] = &["sh"];

    /// The image ID as `docker images` shows it (12 hex digits).
    pub fn short_id(&self) -> &str {
        self.image_id.short()
    }
}

/// The repository's fixtures/ directory.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The base image, built on first use in this process (or found built by an earlier run).
pub fn base_image() -> &'static BaseImage {
    static BASE: OnceLock<BaseImage> = OnceLock::new();
    BASE.get_or_init(build)
}

fn hash_file(h: &mut Hasher, path: &Path) {
    let mut f = fs::File::open(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    io::copy(&mut f, h).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
}

fn build() -> BaseImage {
    let script = fixtures_dir().join("mkbase");
    let busybox = super::tool("busybox");
    let mut h = Hasher::new();
    hash_file(&mut h, &script);
    hash_file(&mut h, &busybox);
    let key = h.finish();
    let parent = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fixtures");
    let dir = parent.join(format!("base-{}", &key.hex()[..16]));
    if !dir.join("image-id").is_file() {
        fs::create_dir_all(&parent).unwrap_or_else(|e| panic!("making {}: {e}", parent.display()));
        let tmp = tempfile::Builder::new()
            .prefix(".base-")
            .tempdir_in(&parent)
            .unwrap_or_else(|e| panic!("making a temp dir in {}: {e}", parent.display()));
        let out = Command::new(&script)
            .arg(tmp.path())
            .env("BUSYBOX", &busybox)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} {} failed ({}):\n{}{}",
            script.display(),
            tmp.path().display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Publish; if another process published the same key first, keep that one.
        let made = tmp.keep();
        if fs::rename(&made, &dir).is_err() {
            let _ = fs::remove_dir_all(&made);
        }
        // TempDir made it 0700: others (the test user) may need to read it.
        let _ = Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(&dir)
            .status();
    }
    let read_digest = |name: &str| -> Digest {
        let p = dir.join(name);
        let text =
            fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
        text.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{}: {text:?} is not a digest: {e}", p.display()))
    };
    BaseImage {
        oci_tar: dir.join("base.tar"),
        oci_dir: dir.join("oci"),
        rootfs_tar: dir.join("rootfs.tar"),
        image_id: read_digest("image-id"),
        diff_id: read_digest("diff-id"),
        dir,
    }
}
