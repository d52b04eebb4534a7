//! `top` and `stats`: their argh structs and docker's printing (top's tabwriter with
//! 20-wide columns; stats' `CONTAINER ID NAME CPU % MEM USAGE / LIMIT MEM % NET I/O
//! BLOCK I/O PIDS` with docker's units, redrawn every second until Ctrl-C without
//! `--no-stream`).

use std::io::{self, Write};
use std::time::Duration;

use argh::FromArgs;

use super::CliError;
use super::format::{Table, binary_size, human_size};
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

/// The stats table for rows (docker's cells).
pub fn stats_table(rows: &[StatsRow], no_trunc: bool) -> String {
    let mut t = Table::new(&[
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
        "PIDS",
    ]);
    for r in rows {
        let id = if no_trunc {
            r.id.clone()
        } else {
            r.id.chars().take(12).collect()
        };
        t.row(vec![
            id,
            r.name.clone(),
            format!("{:.2}%", r.cpu_percent),
            format!(
                "{} / {}",
                binary_size(r.memory),
                binary_size(r.memory_limit)
            ),
            format!("{:.2}%", r.memory_percent),
            format!("{} / {}", human_size(r.net_rx), human_size(r.net_tx)),
            format!(
                "{} / {}",
                human_size(r.block_read),
                human_size(r.block_write)
            ),
            r.pids.to_string(),
        ]);
    }
    t.render()
}

fn rows(prev: &[StatsSample], cur: &[StatsSample], hz: u64) -> Vec<StatsRow> {
    cur.iter()
        .map(|c| stats_row(prev.iter().find(|p| p.id == c.id), c, hz))
        .collect()
}

pub fn stats(engine: &Engine, a: &Stats) -> Result<(), CliError> {
    let hz = ticks_per_second();
    let interval = Duration::from_secs(1);
    let mut prev = engine.stats_sample(&a.containers, a.all)?;
    loop {
        std::thread::sleep(interval);
        let cur = engine.stats_sample(&a.containers, a.all)?;
        let table = stats_table(&rows(&prev, &cur, hz), a.no_trunc);
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

    #[test]
    fn stats_cells_use_dockers_units() {
        let row = StatsRow {
            id: "0123456789abcdef".repeat(4),
            name: "web".into(),
            cpu_percent: 0.5,
            memory: 1_576_960,
            memory_limit: 25_125_558_272,
            memory_percent: 0.006276,
            net_rx: 1234,
            net_tx: 0,
            block_read: 0,
            block_write: 4_100_000,
            pids: 2,
        };
        let text = stats_table(&[row], false);
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
