//! `build`: Dockerfiles to images. This file is owned by the executor ("build"); the
//! context side (context, .dockerignore, COPY/ADD planning and layers) lives in the
//! modules below.

pub mod archive;
pub mod context;
pub mod copy;
pub mod glob;
pub mod ignore;
pub mod imagefs;
pub mod view;

#[cfg(test)]
mod context_tests;
