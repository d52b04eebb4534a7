//! How docker prints numbers, times and tables: sizes in decimal units with three
//! significant digits (`4.26MB`), ages as `About an hour ago`, and tables aligned the way
//! Go's `tabwriter` aligns docker's (min width 10, padding 3, last column unpadded).
//!
//! Pure: values in, strings out; the caller passes "now", so every function is testable.

/// The report of docker's prune commands: each non-empty section (`Deleted Containers:`
/// and its lines, then a blank line), then `Total reclaimed space: SIZE`.
pub fn pruned(sections: &[(&str, Vec<String>)], reclaimed: u64) -> String {
    let mut out = String::new();
    for (title, lines) in sections.iter().filter(|(_, l)| !l.is_empty()) {
        out.push_str(title);
        out.push('\n');
        for l in lines {
            out.push_str(l);
            out.push('\n');
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "Total reclaimed space: {}\n",
        human_size(reclaimed)
    ));
    out
}

/// JSON as docker's `inspect` prints it: indented by four spaces, keys in the order the
/// value gives them.
pub fn inspect_json<T: serde::Serialize>(v: &T) -> serde_json::Result<String> {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    v.serialize(&mut ser)?;
    // serde_json writes only UTF-8
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// docker's `units.HumanSize`: decimal units, 3 significant digits, Go's `%g` form.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    format!("{}{}", go_g(size, 3), UNITS[unit])
}

/// docker's `units.BytesSize` (what `stats` shows for memory): binary units, 4
/// significant digits (`1.504MiB`, `23.45GiB`).
pub fn binary_size(bytes: u64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    format!("{}{}", go_g(size, 4), UNITS[unit])
}

/// Go's `%.<digits>g` for a value below `10^digits`: that many significant digits,
/// trailing zeros dropped, and Go's exponent form when rounding reaches `10^digits`
/// (`1e+03` for three digits).
fn go_g(v: f64, digits: i32) -> String {
    if v == 0.0 {
        return "0".into();
    }
    // The exponent of the value once rounded to `digits` significant digits.
    let mut exp = v.abs().log10().floor() as i32;
    let scale = 10f64.powi(digits - 1 - exp);
    let rounded = (v * scale).round() / scale;
    if rounded.abs() >= 10f64.powi(exp + 1) {
        exp += 1;
    }
    if exp >= digits {
        let mant = rounded / 10f64.powi(exp);
        let d = (digits - 1) as usize;
        let m = trim_zeros(format!("{mant:.d$}"));
        return format!("{m}e+{exp:02}");
    }
    let decimals = (digits - 1 - exp).max(0) as usize;
    trim_zeros(format!("{rounded:.decimals$}"))
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// docker's `units.HumanDuration` (what `CREATED` shows before ` ago`).
pub fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    if s < 1 {
        return "Less than a second".into();
    }
    if s == 1 {
        return "1 second".into();
    }
    if s < 60 {
        return format!("{s} seconds");
    }
    let minutes = s / 60;
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    // Go: int(d.Hours() + 0.5)
    let hours = (s as f64 / 3600.0 + 0.5) as i64;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", s / 3600 / 24 / 365)
}

/// `CREATED` as docker shows it: `3 weeks ago`, or `N/A` when the image has no date.
pub fn ago(created: Option<i64>, now: i64) -> String {
    match created {
        Some(t) => format!("{} ago", human_duration(now - t)),
        None => "N/A".into(),
    }
}

/// docker's `Ellipsis`: at most `max` characters, the cut marked by `...`.
pub fn ellipsis(s: &str, max: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= max {
        return s.to_string();
    }
    if max <= 3 {
        return chars[..max].iter().collect();
    }
    let mut out: String = chars[..max - 3].iter().collect();
    out.push_str("...");
    out
}

/// A table laid out as docker's `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`: every
/// column but the last is as wide as its widest cell plus 3, and at least 10.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
    min_width: usize,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|s| s.to_string()).collect()],
            min_width: 10,
        }
    }

    /// The same with another minimum column width (`top` uses 20, as docker's).
    pub fn min_width(mut self, width: usize) -> Table {
        self.min_width = width;
        self
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, one line per row, each ending in `\n`.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![self.min_width; columns];
        for row in &self.rows {
            // the last cell of a row is not padded, so it does not widen its column
            for (i, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
                widths[i] = widths[i].max(cell.chars().count() + 3);
            }
        }
        let mut out = String::new();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                out.push_str(cell);
                if i + 1 < row.len() {
                    let pad = widths[i] - cell.chars().count();
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_reports_skip_empty_sections() {
        let text = pruned(
            &[
                ("Deleted Containers:", vec![]),
                ("Deleted Volumes:", vec!["a".into(), "b".into()]),
            ],
            1500,
        );
        assert_eq!(
            text,
            "Deleted Volumes:\na\nb\n\nTotal reclaimed space: 1.5kB\n"
        );
        assert_eq!(pruned(&[], 0), "Total reclaimed space: 0B\n");
    }

    #[test]
    fn sizes_match_go_units() {
        for (n, want) in [
            (0, "0B"),
            (1, "1B"),
            (999, "999B"),
            (1000, "1kB"),
            (1234, "1.23kB"),
            (4_261_000, "4.26MB"),
            (4_265_000, "4.26MB"), // round half to even on the binary value, as Go
            (12_345_678, "12.3MB"),
            (123_456_789, "123MB"),
            (100_000_000, "100MB"),
            (999_999, "1e+03kB"),
            (1_500_000_000, "1.5GB"),
            (77_800_000, "77.8MB"),
        ] {
            assert_eq!(human_size(n), want, "{n}");
        }
    }

    #[test]
    fn durations_match_go_units() {
        for (s, want) in [
            (0, "Less than a second"),
            (1, "1 second"),
            (59, "59 seconds"),
            (60, "About a minute"),
            (119, "About a minute"),
            (120, "2 minutes"),
            (3599, "59 minutes"),
            (3600, "About an hour"),
            (5399, "About an hour"),
            (5400, "2 hours"),
            (47 * 3600, "47 hours"),
            (48 * 3600, "2 days"),
            (14 * 24 * 3600, "2 weeks"),
            (60 * 24 * 3600, "2 months"),
            (2 * 365 * 24 * 3600, "2 years"),
        ] {
            assert_eq!(human_duration(s), want, "{s}");
        }
        assert_eq!(ago(Some(100), 100 + 7200), "2 hours ago");
        assert_eq!(ago(None, 5), "N/A");
    }

    #[test]
    fn ellipsis_cuts_with_dots() {
        assert_eq!(ellipsis("short", 45), "short");
        let long = "/bin/sh -c #(nop) ADD file:8e30b1ad0dfa2e2b5a5 in / ";
        let cut = ellipsis(long, 45);
        assert_eq!(cut.chars().count(), 45);
        assert!(cut.ends_with("..."));
        assert_eq!(ellipsis("abcdef", 2), "ab");
    }

    #[test]
    fn table_aligns_like_tabwriter() {
        let mut t = Table::new(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
        t.row(vec![
            "busybox".into(),
            "latest".into(),
            "a416a98b71e2".into(),
            "2 weeks ago".into(),
            "4.26MB".into(),
        ]);
        assert_eq!(
            t.render(),
            "REPOSITORY   TAG       IMAGE ID       CREATED       SIZE\n\
             busybox      latest    a416a98b71e2   2 weeks ago   4.26MB\n"
        );
    }
}
