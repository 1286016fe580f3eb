//! `fairflow events check|repair`: the event log's damage report and its
//! one repair.

use crate::print_out;
use anyhow::Context;
use clap::Subcommand;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub(crate) enum EventsCommand {
    /// Report every damage in an event log and exactly which acknowledged
    /// events a repair would drop. Exit 0: a server starts on it; 1: it
    /// refuses. Reads only.
    Check {
        /// The event log directory (`events.dir`).
        dir: PathBuf,
        /// List every record a repair would drop (default: the first 20 per damage).
        #[arg(long)]
        all: bool,
    },
    /// Cut the log at one damage `check` reported; what is cut moves to
    /// DIR/dropped/, nothing is deleted.
    Repair {
        dir: PathBuf,
        /// Where to cut, as `check` prints it: FILE:OFFSET.
        #[arg(long)]
        at: String,
    },
}

pub(crate) fn events(command: EventsCommand) -> anyhow::Result<std::process::ExitCode> {
    match command {
        EventsCommand::Check { dir, all } => {
            let report = fairflow::events::check(&dir)?;
            print_out(&report.render(&dir, (!all).then_some(20)))?;
            Ok(if report.starts() {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            })
        }
        EventsCommand::Repair { dir, at } => {
            let (file, offset) = at
                .rsplit_once(':')
                .and_then(|(f, o)| Some((f, o.parse::<u64>().ok()?)))
                .with_context(|| {
                    format!("--at {at}: expected FILE:OFFSET, as `fairflow events check` prints it")
                })?;
            let repaired = fairflow::events::repair(&dir, Path::new(file), offset)?;
            let lost: Vec<_> = repaired.damage.lost().collect();
            let mut text = format!(
                "cut {at}: dropped {} acknowledged records not in the snapshot, kept in {}\n",
                lost.len(),
                repaired.kept_in.display()
            );
            for r in lost {
                text.push_str(&format!("    {}\n", r.name));
            }
            text.push_str("a server now starts on this log\n");
            print_out(&text)?;
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}
