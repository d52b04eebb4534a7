//! camada: a rootless, daemonless container engine with Docker's command line.
//!
//! ```text
//! pull:   registry --ureq, a thread per layer--> blobs/sha256/<hex>        (as sent, verified)
//!                                           \--> layers/<diffid>/{tar,idx} (decompressed + indexed, same pass)
//! run:    image -> layer chain -> merged lower index (cached per chain id)
//!               -> FUSE overlay (lower: mmapped tars, upper: containers/<id>/upper)
//!               -> user + mount + pid + uts + ipc (+ net) namespaces -> pivot_root -> exec
//! build:  Dockerfile -> parse (pure) -> for each step: cache key -> hit: reuse layer
//!               | miss: RUN in a container / COPY, ADD into the upper dir -> upper -> layer tar -> blob
//! push:   image -> HEAD each blob -> upload the missing ones (cross-repo mount when known) -> PUT manifest
//! ```
//!
//! Modules come in rows (design.md): `cli` calls `engine`; `engine` wires the services
//! (`store`, `registry`, `layer`, `overlay`, ...); the services use only the pure modules
//! (`reference`, `digest`, `image`, `tarindex`, `paths`). `tests/architecture.rs` holds
//! the code to that table.

pub mod build;
pub mod cli;
pub mod digest;
pub mod dockerfile;
pub mod engine;
pub mod image;
pub mod layer;
pub mod overlay;
pub mod paths;
pub mod reference;
pub mod registry;
pub mod runtime;
pub mod state;
pub mod store;
pub mod tarindex;
