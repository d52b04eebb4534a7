//! cli (being written).

/// Runs the command line; returns the exit code.
pub fn main() -> i32 {
    eprintln!("Error: not implemented yet");
    125
}
