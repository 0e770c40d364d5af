//! The command line: clap's view of it ([`args`]), its conversion into the library's inputs
//! ([`convert`]) and one function per command (`commands`). Nothing below this module sees a
//! clap type.

pub mod args;
mod commands;
pub mod convert;
pub mod embed;

pub use args::Cli;
pub use convert::{parse_scenario, parse_scenario_spec};

use args::Command;
use clap::Parser;

/// Runs one parsed command.
fn run(cli: Cli) -> crate::error::Result<()> {
    match cli.command {
        Command::Models(a) => commands::models(&a),
        Command::Gpus(a) => commands::gpus(&a),
        Command::Ops(a) => commands::ops(&a),
        Command::Memory(a) => commands::memory(&a),
        Command::Estimate(a) => commands::estimate(&a),
        Command::Bench(a) => commands::bench(&a),
        Command::Calibrate(a) => commands::calibrate(&a),
        Command::Validate(a) => commands::validate(&a),
        Command::Audit(a) => commands::audit(&a),
        Command::Plot(a) => commands::plot(&a),
        Command::Sweep(a) => commands::sweep(&a),
        Command::Search(a) => commands::search(&a),
        Command::Sensitivity(a) => commands::sensitivity(&a),
        Command::FlashReport(a) => commands::flash_report(&a),
        Command::Report(a) => commands::report(&a),
        Command::Completions(a) => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(a.shell, &mut Cli::command(), "roofline", &mut script);
            commands::out(&String::from_utf8_lossy(&script))
        }
    }
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    match run(cli) {
        Ok(()) => 0,
        Err(e) if e.is_broken_pipe() => 0,
        Err(e) => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "error: {e}");
            e.exit_code()
        }
    }
}
