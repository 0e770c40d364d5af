//! The crate's error type. Every error a user or the environment can cause (a bad spec file, an
//! unknown name, a nonsensical setting, a missing or unreadable file, an output that cannot be
//! written, a missing GPU driver) maps to exit code 2 with a message that names the file and the
//! field; exit code 1 is reserved for internal failures ([`Error::Internal`]), which are bugs.

use std::fmt;
use std::path::{Path, PathBuf};

/// What went wrong, with enough context to fix it.
#[derive(Debug)]
pub enum Error {
    /// A spec file (model, hardware, calibration, measurements) is malformed.
    Spec {
        /// The file (or `embedded:NAME` for a built-in spec).
        file: String,
        /// Dotted path of the offending field, e.g. `transformer.heads`.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A name that resolves to nothing (model, GPU, option value).
    UnknownName {
        /// What kind of thing was looked up ("model", "GPU", ...).
        what: &'static str,
        /// The name given.
        name: String,
        /// The closest known name, if any is close.
        suggestion: Option<String>,
        /// All known names.
        known: Vec<String>,
        /// Whether a path to a TOML file is taken too (spec files, not option values).
        paths: bool,
    },
    /// An invalid command-line value or combination of settings.
    Invalid(String),
    /// Options that do not parse (an unknown option, a value of the wrong kind), as the command
    /// line's parser words it; for callers that pass options as words inside a process (the
    /// Python package), which see the option and the value apart.
    Usage {
        /// The option, as named on the command line without dashes (`batch`), when known.
        option: Option<String>,
        /// The value given, when one was.
        value: Option<String>,
        /// The parser's message.
        message: String,
    },
    /// Reading or writing a file failed.
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The GPU side (driver, NVRTC, cuBLAS) is unavailable or failed.
    Gpu(String),
    /// A result the code should never produce (a non-finite figure, a chart that cannot be
    /// drawn): a bug, exit code 1.
    Internal(String),
}

/// Convenience alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Builds a [`Error::Spec`].
    pub fn spec(
        file: impl Into<String>,
        field: impl Into<String>,
        problem: impl Into<String>,
    ) -> Self {
        Error::Spec {
            file: file.into(),
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// Builds an [`Error::Io`].
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The process exit code for this error: 1 for an internal failure, 2 for everything else
    /// (the input, a file or the environment).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Internal(_) => 1,
            _ => 2,
        }
    }

    /// Writing to stdout failed because its reader went away (`roofline ... | head`): not an
    /// error for a command-line tool, which then stops quietly.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// An [`Error::UnknownName`] with the closest known name as a suggestion.
    pub fn unknown(what: &'static str, name: &str, known: &[&str]) -> Self {
        let suggestion = closest(name, known);
        Error::UnknownName {
            what,
            name: name.to_string(),
            suggestion,
            known: known.iter().map(|s| s.to_string()).collect(),
            paths: false,
        }
    }

    /// [`Error::unknown`] for a spec file's name, where a path to a TOML file works too.
    pub fn unknown_spec(what: &'static str, name: &str, known: &[&str]) -> Self {
        match Self::unknown(what, name, known) {
            Error::UnknownName {
                what,
                name,
                suggestion,
                known,
                ..
            } => Error::UnknownName {
                what,
                name,
                suggestion,
                known,
                paths: true,
            },
            other => other,
        }
    }
}

/// The known names that start with `name` (all of them, joined by "` or `"), else the one
/// closest by normalized Levenshtein similarity, if reasonably close.
pub fn closest(name: &str, known: &[&str]) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let prefixed: Vec<&str> = known
        .iter()
        .filter(|k| !lower.is_empty() && k.to_ascii_lowercase().starts_with(&lower))
        .copied()
        .collect();
    if !prefixed.is_empty() {
        return Some(prefixed.join("` or `"));
    }
    known
        .iter()
        .map(|k| {
            (
                strsim::normalized_levenshtein(&lower, &k.to_ascii_lowercase()),
                *k,
            )
        })
        .filter(|(score, _)| *score >= 0.4)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k.to_string())
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Spec {
                file,
                field,
                problem,
            } => {
                write!(f, "{file}: field `{field}`: {problem}")
            }
            Error::UnknownName {
                what,
                name,
                suggestion,
                known,
                paths,
            } => {
                write!(f, "unknown {what} `{name}`")?;
                if let Some(s) = suggestion {
                    write!(f, "; did you mean `{s}`?")?;
                }
                write!(f, " (known: {}", known.join(", "))?;
                if *paths {
                    write!(f, "; a path to a TOML file also works")?;
                }
                write!(f, ")")
            }
            Error::Invalid(msg) => write!(f, "{msg}"),
            Error::Usage { message, .. } => write!(f, "{message}"),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Gpu(msg) => write!(f, "{msg}"),
            Error::Internal(msg) => write!(f, "internal error (a bug; please report it): {msg}"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_closest_name() {
        let known = ["h100-sxm", "h200-sxm", "b200"];
        assert_eq!(closest("h200sxm", &known).as_deref(), Some("h200-sxm"));
        assert_eq!(closest("zzzzzzzzzzzzzz", &known), None);
        let e = Error::unknown("GPU", "h20-sxm", &known);
        assert!(e.to_string().contains("did you mean"));
        assert_eq!(e.exit_code(), 2);
    }
}
