//! The command line inside a process (the Python package): the same parse, the same conversion
//! and the same JSON builders as `roofline COMMAND --json`, returning values instead of printing
//! them. Options are the words a user types (`["estimate", "--batch", "32"]`), so their names,
//! defaults, units, suffixes and checks are the command line's own: there is no second copy.

use super::args::{Cli, Command};
use super::commands;
use crate::error::{Error, Result};
use crate::scenario::ScenarioSpec;
use clap::{CommandFactory, Parser};
use serde_json::{json, Value};

/// Parses `roofline WORDS...`; what clap refuses becomes an [`Error::Usage`] naming the option
/// and the value.
pub fn parse(words: &[String]) -> Result<Cli> {
    let argv = std::iter::once("roofline").chain(words.iter().map(String::as_str));
    Cli::try_parse_from(argv).map_err(usage)
}

/// A clap error as an [`Error::Usage`]: its message without the usage line and the `--help`
/// tip, and the option (without dashes, `-` as `_`) and value it names.
fn usage(e: clap::Error) -> Error {
    use clap::error::{ContextKind, ContextValue};
    let text = |k| match e.get(k) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => v.first().cloned(),
        _ => None,
    };
    let option = text(ContextKind::InvalidArg).map(|a| {
        let flag = a.split_whitespace().next().unwrap_or(&a);
        flag.trim_start_matches('-').replace('-', "_")
    });
    let rendered = e.render().to_string();
    let message = rendered
        .lines()
        .filter(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .collect::<Vec<_>>()
        .join("\n");
    Error::Usage {
        option,
        value: text(ContextKind::InvalidValue).filter(|v| !v.is_empty()),
        message: message
            .trim()
            .trim_start_matches("error: ")
            .trim()
            .to_string(),
    }
}

/// What `roofline WORDS... --json` prints, as a value (`--json` itself need not be given):
/// models, gpus, ops, memory, estimate and search.
pub fn json(words: &[String]) -> Result<Value> {
    match parse(words)?.command {
        Command::Models(a) if a.import.is_none() => commands::models_json(),
        Command::Gpus(_) => commands::gpus_json(),
        Command::Ops(a) => commands::ops_json(&a),
        Command::Memory(a) => commands::memory_json(&a),
        Command::Estimate(a) => commands::estimate_json(&a),
        Command::Search(a) => commands::search_json(&a),
        _ => Err(Error::Invalid(format!(
            "`roofline {}` has no JSON value to return",
            words.join(" ")
        ))),
    }
}

/// The scenario of `roofline estimate WORDS...`, by name (what `sweep` and `plot roofline` take
/// beside their own options).
pub fn scenario_spec(words: &[String]) -> Result<ScenarioSpec> {
    let mut all = vec!["estimate".to_string()];
    all.extend_from_slice(words);
    match parse(&all)?.command {
        Command::Estimate(a) => a.scenario.spec(),
        _ => Err(Error::Internal("estimate parsed as another command".into())),
    }
}

/// The options of `roofline COMMAND` (a command path, e.g. `["plot", "roofline"]`): for each,
/// its name as a keyword (`gpus_per_node`), whether it is a flag, its default as the command
/// line shows it, and its help.
pub fn options(command: &[&str]) -> Result<Value> {
    let mut cmd = Cli::command();
    for name in command {
        cmd = cmd
            .find_subcommand(name)
            .cloned()
            .ok_or_else(|| Error::Invalid(format!("no command `{}`", command.join(" "))))?;
    }
    let rows: Vec<Value> = cmd
        .get_arguments()
        .filter(|a| a.get_long().is_some_and(|l| l != "help" && l != "version"))
        .map(|a| {
            let long = a.get_long().unwrap_or_default();
            let defaults: Vec<String> = a
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            json!({
                "name": long.replace('-', "_"),
                "flag": matches!(a.get_action(), clap::ArgAction::SetTrue),
                "default": defaults.first(),
                "help": a.get_help().map(|h| h.to_string()),
            })
        })
        .collect();
    Ok(Value::Array(rows))
}

/// `roofline plot roofline WORDS... [--measured FILE]` rendered as `format`: every op of the
/// step on the GPU's roofline, as the command draws it.
pub fn plot_roofline(
    words: &[String],
    measured: Option<&std::path::Path>,
    format: crate::plot::Format,
) -> Result<Vec<u8>> {
    let s = scenario_spec(words)?.load()?;
    let measured = match measured {
        Some(p) => crate::analysis::roofline::load_measured(p)?,
        None => Vec::new(),
    };
    let chart = crate::analysis::roofline::chart(&s, measured)?;
    crate::plot::render(&chart, format, crate::plot::SIZE)
}
