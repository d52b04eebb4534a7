//! `image tree` drawn: the layer stack with the base at the bottom, as one pictures a
//! stack, each layer with its size, file count, the step that made it, and its changes.

use super::format::{ago, human_size};
use crate::engine::{ImageTree, TreeLayer, TreeStep};

/// How many paths a layer lists unless `--no-trunc`.
const SHOWN: usize = 8;

/// The picture as text. `truncate` limits each layer to its first few paths.
pub fn draw(tree: &ImageTree, truncate: bool, now: i64) -> String {
    let layers = tree
        .steps
        .iter()
        .filter(|s| matches!(s, TreeStep::Layer(_)))
        .count();
    let mut out = format!(
        "{}  {}  {} layer{}  {}\n",
        tree.name,
        tree.id.short(),
        layers,
        if layers == 1 { "" } else { "s" },
        human_size(tree.size)
    );
    out.push_str(
        "the stack as a container sees it, base at the bottom;\n+ added, ~ changed, - deleted: relative to the layers below\n\n",
    );
    let mut first = true;
    for step in tree.steps.iter().rev() {
        match step {
            TreeStep::Empty {
                created_by,
                created,
            } => {
                out.push_str(&format!(
                    "{}  {}   (no layer: config only, {})\n",
                    if first { " " } else { "│" },
                    one_line(created_by),
                    ago(*created, now)
                ));
            }
            TreeStep::Layer(l) => {
                draw_layer(&mut out, l, first, truncate, now);
                first = false;
            }
        }
    }
    out.push_str("└─ (empty root)\n");
    out
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn draw_layer(out: &mut String, l: &TreeLayer, first: bool, truncate: bool, now: i64) {
    out.push_str(&format!(
        "{}─ layer {}{}  {}  {} file{}  {}\n",
        if first { "┌" } else { "├" },
        l.number,
        if l.number == 1 { " (bottom)" } else { "" },
        human_size(l.size),
        l.files,
        if l.files == 1 { "" } else { "s" },
        l.diff_id.digest().short(),
    ));
    match &l.created_by {
        Some(c) => out.push_str(&format!("│  {}   ({})\n", one_line(c), ago(l.created, now))),
        None => out.push_str("│  (no history entry)\n"),
    }
    let mut counts = Vec::new();
    for (n, what) in [
        (l.added.len(), "added"),
        (l.changed.len(), "changed"),
        (l.deleted.len(), "deleted"),
    ] {
        if n > 0 {
            counts.push(format!("{n} {what}"));
        }
    }
    if counts.is_empty() {
        out.push_str("│  (no changes)\n");
        out.push_str("│\n");
        return;
    }
    out.push_str(&format!("│  {}\n", counts.join(", ")));
    let mut paths: Vec<(char, &String)> = l
        .deleted
        .iter()
        .map(|p| ('-', p))
        .chain(l.changed.iter().map(|p| ('~', p)))
        .chain(l.added.iter().map(|p| ('+', p)))
        .collect();
    paths.sort_by(|a, b| a.1.cmp(b.1));
    let lines = if truncate {
        collapse(&paths)
    } else {
        paths.iter().map(|(s, p)| format!("{s} {p}")).collect()
    };
    let total = lines.len();
    let limit = if truncate { SHOWN } else { usize::MAX };
    for line in lines.iter().take(limit) {
        out.push_str(&format!("│    {line}\n"));
    }
    if total > limit {
        out.push_str(&format!(
            "│    … {} more (--no-trunc lists every path)\n",
            total - limit
        ));
    }
    out.push_str("│\n");
}

/// Sorted `(sign, path)` pairs as lines, a directory added (or deleted) with everything
/// in it shown once with a count: `+ bin/  (270 entries)`.
fn collapse(paths: &[(char, &String)]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut i = 0;
    while let Some((sign, p)) = paths.get(i) {
        i += 1;
        if p.ends_with('/') && matches!(sign, '+' | '-') {
            let inside = paths[i..]
                .iter()
                .take_while(|(s, q)| s == sign && q.starts_with(p.as_str()))
                .count();
            if inside > 0 {
                i += inside;
                let noun = if inside == 1 { "entry" } else { "entries" };
                lines.push(format!("{sign} {p}  ({inside} {noun} inside)"));
                continue;
            }
        }
        lines.push(format!("{sign} {p}"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::{DiffId, Digest};

    #[test]
    fn draws_top_first_with_changes() {
        let layer = |n: usize, added: &[&str], changed: &[&str], deleted: &[&str]| {
            TreeStep::Layer(TreeLayer {
                number: n,
                diff_id: DiffId(Digest::of(n.to_string().as_bytes())),
                size: 1500 * n as u64,
                files: added.len() as u64,
                created_by: Some(format!("RUN step {n}")),
                created: Some(0),
                added: added.iter().map(|s| s.to_string()).collect(),
                changed: changed.iter().map(|s| s.to_string()).collect(),
                deleted: deleted.iter().map(|s| s.to_string()).collect(),
            })
        };
        let tree = ImageTree {
            name: "app:1".into(),
            id: Digest::of(b"config"),
            size: 4500,
            steps: vec![
                layer(1, &["bin/", "bin/sh", "etc/", "etc/passwd"], &[], &[]),
                layer(2, &["app/"], &["etc/passwd"], &["bin/sh"]),
                TreeStep::Empty {
                    created_by: "CMD [\"sh\"]".into(),
                    created: Some(0),
                },
            ],
        };
        let text = draw(&tree, true, 3600 * 24 * 3);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("app:1  "), "{text}");
        assert!(lines[0].contains("2 layers  4.5kB"), "{text}");
        let top = text.find("layer 2").unwrap();
        let bottom = text.find("layer 1 (bottom)").unwrap();
        let cmd = text.find("CMD [\"sh\"]").unwrap();
        assert!(cmd < top && top < bottom, "{text}");
        assert!(
            text.contains("│    - bin/sh\n│    + app/\n")
                || text.contains("│    + app/\n│    - bin/sh\n"),
            "{text}"
        );
        assert!(text.contains("~ etc/passwd"), "{text}");
        assert!(text.contains("1 added, 1 changed, 1 deleted"), "{text}");
        assert!(text.ends_with("└─ (empty root)\n"));
    }

    #[test]
    fn added_directories_collapse_with_a_count() {
        let owned: Vec<(char, String)> = vec![
            ('+', "bin/".into()),
            ('+', "bin/a".into()),
            ('+', "bin/b".into()),
            ('~', "etc/passwd".into()),
            ('+', "home/".into()),
            ('-', "tmp/".into()),
            ('-', "tmp/x".into()),
        ];
        let paths: Vec<(char, &String)> = owned.iter().map(|(c, p)| (*c, p)).collect();
        assert_eq!(
            collapse(&paths),
            [
                "+ bin/  (2 entries inside)",
                "~ etc/passwd",
                "+ home/",
                "- tmp/  (1 entry inside)"
            ]
        );
    }

    #[test]
    fn truncates_long_lists() {
        let added: Vec<String> = (0..20).map(|i| format!("f{i:02}")).collect();
        let tree = ImageTree {
            name: "x".into(),
            id: Digest::of(b"c"),
            size: 0,
            steps: vec![TreeStep::Layer(TreeLayer {
                number: 1,
                diff_id: DiffId(Digest::of(b"l")),
                size: 0,
                files: 20,
                created_by: None,
                created: None,
                added: added.clone(),
                changed: vec![],
                deleted: vec![],
            })],
        };
        let short = draw(&tree, true, 0);
        assert!(short.contains("… 12 more"), "{short}");
        assert!(short.contains("--no-trunc lists every path"), "{short}");
        assert!(!short.contains("f19"));
        let full = draw(&tree, false, 0);
        assert!(full.contains("+ f19") && !full.contains("more"), "{full}");
    }
}
