//! The `.dockerignore` reader and the wildcard matcher never panic and never hang:
//! the bytes before the first NUL are the ignore file (and one pattern), the rest a path.
#![no_main]

use camada::build::glob::Pattern;
use camada::build::ignore::Ignore;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (file, path) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"a/b/c"[..]),
    };
    if let Ok(ig) = Ignore::parse(file) {
        let _ = ig.excluded(path);
        let _ = ig.may_include_below(path);
    }
    for double_star in [false, true] {
        if let Ok(p) = Pattern::new(file, double_star) {
            let _ = p.matches(path);
        }
    }
});
