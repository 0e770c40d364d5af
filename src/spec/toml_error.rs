//! A TOML parse error turned into the file / field / problem of an [`crate::error::Error::Spec`].

/// Dotted path of the field a TOML error is about: the key named in an "unknown field" or
/// "missing field" message, else the key on the line the error points at; prefixed by the
/// enclosing `[table]`.
pub(crate) fn toml_error_field(e: &toml::de::Error, text: &str) -> String {
    let msg = e.message();
    let quoted = msg
        .find('`')
        .and_then(|a| msg[a + 1..].find('`').map(|len| &msg[a + 1..a + 1 + len]));
    let start = e.span().map_or(0, |s| s.start.min(text.len()));
    let before = &text[..start];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line = &text[line_start..line_end];
    let header = |l: &str| l.starts_with('[') && l.ends_with(']');
    let table = std::iter::once(line.trim())
        .filter(|l| header(l))
        .chain(before.lines().rev().map(str::trim).filter(|l| header(l)))
        .next()
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    let key = if msg.starts_with("unknown field") || msg.starts_with("missing field") {
        quoted.map(str::to_string)
    } else {
        line.split_once('=').map(|(k, _)| k.trim().to_string())
    };
    match (table, key) {
        (Some(t), Some(k)) => format!("{t}.{k}"),
        (_, Some(k)) => k,
        (Some(t), None) => t,
        (None, None) => "(top level)".to_string(),
    }
}

/// The TOML error as one line: the message plus the line and column where it applies.
pub(crate) fn toml_error_problem(e: &toml::de::Error) -> String {
    let full = e.to_string();
    let location = full
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("TOML parse error ")
        .to_string();
    format!("{} ({location})", e.message().trim())
}
