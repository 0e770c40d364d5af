//! Output formats, one file each: plain-text tables ([`text`]), JSON ([`json`]), Markdown
//! ([`markdown`]) and CSV ([`csv`]). Each renders data that an analysis returned into a string;
//! none computes an estimate or writes a file ([`crate::files`] writes, whole or not at all).
//! Report structs carry units in their field names (`_s`, `_bytes`, `_per_s`) so that the JSON
//! is self-describing.

pub mod csv;
pub mod json;
pub mod markdown;
pub mod text;
