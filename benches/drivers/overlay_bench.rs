//! Developer tool for benches/overlay.sh (not part of the CLI contract): indexes layer
//! tars into a merged lower index, and serves an overlay until SIGTERM.
//!
//! ```text
//! overlay_bench index OUT_DIR TAR...            -> OUT_DIR/merged.idx
//! overlay_bench mount MERGED_IDX DIR MNT TAR... -> serves DIR/{upper,work} on MNT
//! ```
//! `camada mount CONTAINER` (issue 5) replaces this once containers exist.

#[path = "../../tests/overlay_fixture/mod.rs"]
mod overlay_fixture;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use camada::tarindex::Index;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("index") if args.len() >= 3 => {
            let out = Path::new(&args[1]);
            let mut idx = Vec::new();
            for t in &args[2..] {
                let bytes = match std::fs::read(t) {
                    Ok(b) => b,
                    Err(e) => {
                        eprintln!("reading {t}: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                match Index::open(overlay_fixture::index_tar(&bytes)) {
                    Ok(i) => idx.push(i),
                    Err(e) => {
                        eprintln!("indexing {t}: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            let refs: Vec<&Index<Vec<u8>>> = idx.iter().collect();
            match camada::tarindex::merge(&refs) {
                Ok(m) => {
                    if let Err(e) = std::fs::write(out.join("merged.idx"), m) {
                        eprintln!("writing the index: {e}");
                        return ExitCode::FAILURE;
                    }
                }
                Err(e) => {
                    eprintln!("merging: {e}");
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Some("mount") if args.len() >= 5 => {
            let dir = Path::new(&args[2]);
            let mut opts = camada::overlay::Options::in_dir(
                dir,
                PathBuf::from(&args[1]),
                args[4..].iter().map(PathBuf::from).collect(),
            );
            // OVL_THREADS=N: worker threads (default: the server's own choice).
            if let Some(n) = std::env::var("OVL_THREADS")
                .ok()
                .and_then(|v| v.parse().ok())
            {
                opts.threads = n;
            }
            match camada::overlay::serve(&opts, Path::new(&args[3])) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("Error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!(
                "usage: overlay_bench index OUT_DIR TAR... | mount MERGED_IDX DIR MNT TAR..."
            );
            ExitCode::from(2)
        }
    }
}
