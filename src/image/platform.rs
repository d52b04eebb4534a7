//! Platforms (`linux/arm64`, `linux/arm/v7`): parsing `--platform`, the host's, and
//! choosing an index entry as docker (containerd's `platforms` package) does.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Descriptor, ImageError, null_default};

/// An OS, CPU architecture and optional variant (the `platform` of an index entry).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(
        rename = "os.features",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub os_features: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

const KNOWN_OS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "illumos",
    "ios",
    "js",
    "linux",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
];

const KNOWN_ARCH: &[&str] = &[
    "386", "amd64", "arm", "arm64", "loong64", "mips", "mips64", "mips64le", "mipsle", "ppc64",
    "ppc64le", "riscv64", "s390x", "wasm", // spellings normalised below
    "i386", "x86_64", "x86-64", "aarch64", "armhf", "armel",
];

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
            ..Platform::default()
        }
        .normalized()
    }

    /// The platform this binary runs on, in Go's names (`x86_64` is `amd64`).
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "x86" => "386",
            "aarch64" => "arm64",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "powerpc64" => "ppc64",
            "mips64" if cfg!(target_endian = "little") => "mips64le",
            "loongarch64" => "loong64",
            other => other,
        };
        Platform::new(std::env::consts::OS, arch, None)
    }

    /// Parses `--platform`: `os/arch[/variant]`, or just an OS or an architecture (the
    /// other part is the host's), normalised (`linux/aarch64` is `linux/arm64`).
    pub fn parse(s: &str) -> Result<Platform, ImageError> {
        let err = || ImageError::PlatformSyntax(s.to_owned());
        let parts: Vec<&str> = s.split('/').collect();
        let part_ok = |p: &&str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        };
        if parts.len() > 3 || !parts.iter().all(part_ok) {
            return Err(err());
        }
        let lower: Vec<String> = parts.iter().map(|p| p.to_ascii_lowercase()).collect();
        let host = Platform::host();
        match lower.as_slice() {
            [one] if KNOWN_OS.contains(&one.as_str()) => {
                let mut p = host;
                p.os = one.clone();
                Ok(p)
            }
            [one] if KNOWN_ARCH.contains(&one.as_str()) => Ok(Platform::new(&host.os, one, None)),
            [_] => Err(err()),
            [os, arch] => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] => Ok(Platform::new(os, arch, Some(variant))),
            _ => Err(err()),
        }
    }

    /// containerd's normal form: lowercase, Go architecture names, arm variants spelt
    /// `vN` (arm defaults to v7), arm64's `v8` and amd64's `v1` dropped.
    pub fn normalized(&self) -> Platform {
        let mut os = self.os.to_ascii_lowercase();
        if os == "macos" {
            os = "darwin".into();
        }
        let arch = self.architecture.to_ascii_lowercase();
        let variant = self
            .variant
            .as_deref()
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        let (arch, variant) = match arch.as_str() {
            "i386" => ("386".to_owned(), String::new()),
            "x86_64" | "x86-64" | "amd64" => (
                "amd64".to_owned(),
                if variant == "v1" {
                    String::new()
                } else {
                    variant
                },
            ),
            "aarch64" | "arm64" => (
                "arm64".to_owned(),
                match variant.as_str() {
                    "8" | "v8" | "v8.0" => String::new(),
                    "9" | "9.0" | "v9.0" => "v9".to_owned(),
                    _ => variant,
                },
            ),
            "armhf" => ("arm".to_owned(), "v7".to_owned()),
            "armel" => ("arm".to_owned(), "v6".to_owned()),
            "arm" => (
                "arm".to_owned(),
                match variant.as_str() {
                    "" | "7" => "v7".to_owned(),
                    "5" | "6" | "8" => format!("v{variant}"),
                    _ => variant,
                },
            ),
            _ => (arch, variant),
        };
        Platform {
            os,
            architecture: arch,
            variant: (!variant.is_empty()).then_some(variant),
            os_version: self.os_version.clone(),
            os_features: self.os_features.clone(),
        }
    }

    /// How well an entry of platform `have` serves `self` (normalised both): `Some(0)`
    /// is exact, higher is an older compatible variant, `None` does not run.
    fn rank(&self, have: &Platform) -> Option<u32> {
        let want = self.normalized();
        let have = have.normalized();
        if want.os != have.os || want.architecture != have.architecture {
            return None;
        }
        if want.variant == have.variant {
            return Some(0);
        }
        if want.architecture == "arm" {
            // arm/vN runs vM for M < N (containerd's compat list)
            let n = |v: &Option<String>| {
                v.as_deref()
                    .and_then(|v| v.strip_prefix('v'))
                    .and_then(|d| d.parse::<u32>().ok())
            };
            if let (Some(w), Some(h)) = (n(&want.variant), n(&have.variant))
                && h < w
            {
                return Some(w - h);
            }
        }
        None
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = ImageError;
    fn from_str(s: &str) -> Result<Platform, ImageError> {
        Platform::parse(s)
    }
}

/// BuildKit's attestation entries and other non-runnable entries of an index.
fn is_attestation(d: &Descriptor) -> bool {
    d.annotations
        .get("vnd.docker.reference.type")
        .is_some_and(|t| t == "attestation-manifest")
        || d.platform
            .as_ref()
            .is_some_and(|p| p.os == "unknown" || p.architecture == "unknown")
}

/// The best entry for `want`: exact before compatible, then the first listed; entries
/// without a platform come last (containerd lets them match anything).
pub(super) fn select<'a>(entries: &'a [Descriptor], want: &Platform) -> Option<&'a Descriptor> {
    let mut best: Option<(u32, &Descriptor)> = None;
    for d in entries.iter().filter(|d| !is_attestation(d)) {
        let rank = match &d.platform {
            Some(p) => want.rank(p),
            None => Some(u32::MAX),
        };
        if let Some(r) = rank
            && best.is_none_or(|(b, _)| r < b)
        {
            best = Some((r, d));
        }
    }
    best.map(|(_, d)| d)
}

/// The platforms an index offers, for an error message.
pub(super) fn offered(entries: &[Descriptor]) -> String {
    let names: Vec<String> = entries
        .iter()
        .filter(|d| !is_attestation(d))
        .map(|d| match &d.platform {
            Some(p) => p.to_string(),
            None => "an entry without platform".to_owned(),
        })
        .collect();
    if names.is_empty() {
        "nothing".to_owned()
    } else {
        names.join(", ")
    }
}
