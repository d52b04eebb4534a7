//! `top` and `stats`: their argh structs and docker's printing (top's tabwriter with
//! 20-wide columns; stats' `CONTAINER ID NAME CPU % MEM USAGE / LIMIT MEM % NET I/O
//! BLOCK I/O PIDS` with docker's units, redrawn every second until Ctrl-C without
//! `--no-stream`).

use std::io::{self, Write};
use std::time::Duration;

use argh::FromArgs;

use super::CliError;
use serde_json::{Map, Value};

use super::format::{Table, binary_size, human_size};
use super::template::{Template, format_rows};
use crate::engine::Engine;
use crate::engine::stats::{StatsRow, StatsSample, stats_row, ticks_per_second};

/// Display the running processes of a container (also: container top).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "top", help_triggers("--help"))]
pub struct Top {
    /// the container, then options for the host's ps (default: our own ps -ef)
    #[argh(positional, greedy, arg_name = "CONTAINER [ps OPTIONS]")]
    pub args: Vec<String>,
}

/// Display a live stream of containers' resource usage (also: container stats).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "stats", help_triggers("--help"))]
pub struct Stats {
    /// show all containers (default shows just running)
    #[argh(switch, short = 'a')]
    pub all: bool,
    /// disable streaming stats and only pull the first result
    #[argh(switch)]
    pub no_stream: bool,
    /// do not truncate output
    #[argh(switch)]
    pub no_trunc: bool,
    /// format the output using a Go template: 'table {{.Name}}\t{{.CPUPerc}}', '{{.MemUsage}}'
    /// or 'json' (fields: Container ID Name CPUPerc MemUsage MemPerc NetIO BlockIO PIDs)
    #[argh(option)]
    pub format: Option<String>,
    /// containers (name, ID or ID prefix); default: every running one
    #[argh(positional, arg_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub fn top(engine: &Engine, a: &Top) -> Result<(), CliError> {
    let Some((word, ps_args)) = a.args.split_first() else {
        return Err(CliError::usage(
            "\"camada top\" requires at least 1 argument: CONTAINER [ps OPTIONS]",
            "top",
        ));
    };
    let table = engine.top_container(word, ps_args)?;
    let titles: Vec<&str> = table.titles.iter().map(String::as_str).collect();
    let mut t = Table::new(&titles).min_width(20);
    for p in table.processes {
        t.row(p);
    }
    let mut out = io::stdout().lock();
    write!(out, "{}", t.render())?;
    Ok(())
}

/// docker's column names for `stats --format`.
const STATS_HEADERS: &[(&str, &str)] = &[
    ("Container", "CONTAINER"),
    ("ID", "CONTAINER ID"),
    ("Name", "NAME"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
];

/// docker's default `stats` table.
const STATS_TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

/// The text of one refresh: each row's docker fields (`words`: the containers as named on
/// the command line, each row's `Container`; without them, the full ID) through `format`
/// (docker's `table ...`, a plain template, or `json`).
pub fn stats_text(
    rows: &[StatsRow],
    words: &[String],
    no_trunc: bool,
    format: &str,
) -> Result<String, CliError> {
    let fields: Vec<Map<String, Value>> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let id = if no_trunc {
                r.id.clone()
            } else {
                r.id.chars().take(12).collect()
            };
            let cells = [
                ("Container", words.get(i).unwrap_or(&r.id).clone()),
                ("ID", id),
                ("Name", r.name.clone()),
                ("CPUPerc", format!("{:.2}%", r.cpu_percent)),
                (
                    "MemUsage",
                    format!(
                        "{} / {}",
                        binary_size(r.memory),
                        binary_size(r.memory_limit)
                    ),
                ),
                ("MemPerc", format!("{:.2}%", r.memory_percent)),
                (
                    "NetIO",
                    format!("{} / {}", human_size(r.net_rx), human_size(r.net_tx)),
                ),
                (
                    "BlockIO",
                    format!(
                        "{} / {}",
                        human_size(r.block_read),
                        human_size(r.block_write)
                    ),
                ),
                ("PIDs", r.pids.to_string()),
            ];
            cells
                .into_iter()
                .map(|(k, v)| (k.to_string(), Value::String(v)))
                .collect()
        })
        .collect();
    Ok(format_rows(format, STATS_HEADERS, &fields)?)
}

fn rows(prev: &[StatsSample], cur: &[StatsSample], hz: u64) -> Vec<StatsRow> {
    cur.iter()
        .map(|c| stats_row(prev.iter().find(|p| p.id == c.id), c, hz))
        .collect()
}

pub fn stats(engine: &Engine, a: &Stats) -> Result<(), CliError> {
    let hz = ticks_per_second();
    let interval = Duration::from_secs(1);
    let format = match a.format.as_deref() {
        None | Some("table") => STATS_TABLE,
        Some(f) => f,
    };
    // a bad template is told before the first sample's second
    Template::parse(format.strip_prefix("table").unwrap_or(format))?;
    let mut prev = engine.stats_sample(&a.containers, a.all)?;
    loop {
        std::thread::sleep(interval);
        let cur = engine.stats_sample(&a.containers, a.all)?;
        let table = stats_text(&rows(&prev, &cur, hz), &a.containers, a.no_trunc, format)?;
        let mut out = io::stdout().lock();
        if a.no_stream {
            write!(out, "{table}")?;
            return Ok(());
        }
        // docker's redraw: clear the screen, home the cursor, print the table
        write!(out, "\x1b[2J\x1b[H{table}")?;
        out.flush()?;
        prev = cur;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web() -> StatsRow {
        StatsRow {
            id: "0123456789abcdef".repeat(4),
            name: "web".into(),
            cpu_percent: 12.345,
            memory: 1_576_960,
            memory_limit: 25_125_558_272,
            memory_percent: 0.006276,
            net_rx: 1234,
            net_tx: 0,
            block_read: 0,
            block_write: 4_100_000,
            pids: 2,
        }
    }

    #[test]
    fn stats_format_picks_dockers_fields() {
        let rows = [web()];
        let words = ["we".to_string()];
        assert_eq!(
            stats_text(
                &rows,
                &words,
                false,
                "{{.Name}}: {{.CPUPerc}} {{.MemUsage}} {{.PIDs}}"
            )
            .unwrap(),
            "web: 12.35% 1.504MiB / 23.4GiB 2\n"
        );
        assert_eq!(
            stats_text(&rows, &words, false, "{{.Container}} {{.ID}}").unwrap(),
            "we 0123456789ab\n"
        );
        // without names on the command line, Container is the full ID
        assert_eq!(
            stats_text(&rows, &[], false, "{{.Container}}").unwrap(),
            format!("{}\n", "0123456789abcdef".repeat(4))
        );
        let table = stats_text(
            &rows,
            &words,
            false,
            "table {{.Name}}\\t{{.MemPerc}}\\t{{.NetIO}}\\t{{.BlockIO}}",
        )
        .unwrap();
        assert_eq!(
            table,
            "NAME      MEM %     NET I/O       BLOCK I/O\nweb       0.01%     1.23kB / 0B   0B / 4.1MB\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&stats_text(&rows, &words, false, "json").unwrap()).unwrap();
        assert_eq!(json["CPUPerc"], "12.35%");
        assert_eq!(json["MemUsage"], "1.504MiB / 23.4GiB");
        assert_eq!(json["Container"], "we");
        assert!(stats_text(&rows, &words, false, "{{.Name").is_err());
    }

    #[test]
    fn stats_cells_use_dockers_units() {
        let row = StatsRow {
            cpu_percent: 0.5,
            ..web()
        };
        let text = stats_text(&[row], &[], false, STATS_TABLE).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0].split("   ").filter(|c| !c.is_empty()).count(),
            8,
            "{text}"
        );
        assert!(lines[0].starts_with("CONTAINER ID   NAME "), "{text}");
        assert!(lines[1].starts_with("0123456789ab   web "), "{text}");
        for cell in [
            "0.50%",
            "1.504MiB / 23.4GiB",
            "0.01%",
            "1.23kB / 0B",
            "0B / 4.1MB",
        ] {
            assert!(lines[1].contains(cell), "{cell} in {text}");
        }
        assert!(lines[1].ends_with(" 2"), "{text}");
    }
}
