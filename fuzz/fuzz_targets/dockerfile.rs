//! The Dockerfile parser never panics on arbitrary bytes, and what it accepts expands
//! (resolving stages, walking every stage's steps) without panicking either.
#![no_main]

use camada::dockerfile::{BuildArgs, StageEnv, expand_word, expand_words, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let vars: Vec<(String, String)> = vec![("A".into(), "a b".into()), ("E".into(), String::new())];
        let _ = expand_word(s, &vars, '\\');
        let _ = expand_words(s, &vars, '`');
    }
    let Ok(df) = parse("Dockerfile", data) else {
        return;
    };
    let args = BuildArgs::default();
    let _ = df.resolve(&args);
    for stage in &df.stages {
        if let Ok(mut env) = StageEnv::new(&df, &["PATH=/bin".to_owned()], &args) {
            for step in &stage.steps {
                let _ = env.step(step);
            }
            let _ = env.run_env();
        }
    }
});
