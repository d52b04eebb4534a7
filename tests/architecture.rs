//! Holds the code to the module table of design.md: a module imports only modules in
//! rows below its own, modules of one row never import each other, the CLI calls only
//! the engine (and pure types), and `unsafe` lives only in `sys` files of `runtime` and
//! `overlay`, each block with a `// SAFETY:` line.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// design.md "Modules": the row of each module (1 = top). One deviation, on purpose:
/// `digest` sits in a row of its own below the pure row, because every pure module speaks
/// in digests (a reference may carry one, an image config lists diff_ids, paths name blobs).
const ROWS: &[(&str, u8)] = &[
    ("main", 1),
    ("cli", 1),
    ("engine", 2),
    ("build", 2),
    ("store", 3),
    ("registry", 3),
    ("layer", 3),
    ("overlay", 3),
    ("runtime", 3),
    ("state", 3),
    ("reference", 4),
    ("digest", 5),
    ("image", 4),
    ("tarindex", 4),
    ("dockerfile", 4),
    ("paths", 4),
];

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module a file belongs to: its first component under src/.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    first.trim_end_matches(".rs").to_string()
}

/// Every `crate::NAME` in the code (comments stripped).
fn crate_refs(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap();
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + 7..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push((n + 1, name));
            }
            rest = after;
        }
        // `use crate::{a, b}` groups
        if let Some(i) = code.find("crate::{") {
            for part in code[i + 8..].split(['}', ',']) {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.push((n + 1, name));
                }
            }
        }
    }
    out
}

#[test]
fn modules_import_only_rows_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let rows: BTreeMap<&str, u8> = ROWS.iter().copied().collect();
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    let mut problems = Vec::new();
    for f in &files {
        let module = module_of(&src, f);
        if module == "lib" {
            continue;
        }
        let Some(&row) = rows.get(module.as_str()) else {
            problems.push(format!(
                "{}: module {module:?} is not in design.md's table",
                f.display()
            ));
            continue;
        };
        let text = fs::read_to_string(f).unwrap();
        for (line, used) in crate_refs(&text) {
            if used == module {
                continue;
            }
            let Some(&used_row) = rows.get(used.as_str()) else {
                continue; // a re-export from lib.rs, not a module
            };
            let ok = if module == "cli" || module == "main" {
                used == "engine" || used == "cli" || used_row >= 4
            } else {
                // engine wires the executor it sits beside; build never imports engine
                used_row > row || (module == "engine" && used == "build")
            };
            if !ok {
                problems.push(format!(
                    "{}:{line}: {module} (row {row}) imports {used} (row {used_row})",
                    f.display()
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "layering violations:\n{}",
        problems.join("\n")
    );
}

#[test]
fn unsafe_only_in_sys_files_with_safety_comments() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    let mut problems = Vec::new();
    for f in &files {
        let text = fs::read_to_string(f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let rel = f.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        let in_sys = (rel.starts_with("runtime/") || rel.starts_with("overlay/"))
            && (rel.ends_with("/sys.rs") || rel.contains("/sys/"));
        for (i, line) in lines.iter().enumerate() {
            let code = line.split("//").next().unwrap();
            if !(code.contains("unsafe {")
                || code.contains("unsafe fn")
                || code.contains("unsafe impl"))
            {
                continue;
            }
            if !in_sys {
                problems.push(format!(
                    "{rel}:{}: unsafe outside a runtime/overlay sys file",
                    i + 1
                ));
                continue;
            }
            let has_safety = (i.saturating_sub(4)..=i).any(|j| lines[j].contains("SAFETY:"));
            if !has_safety {
                problems.push(format!(
                    "{rel}:{}: unsafe without a // SAFETY: line just above",
                    i + 1
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
