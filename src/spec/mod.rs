//! Spec files as data: models (models/*.toml) and GPUs (models/hardware/*.toml), embedded in the
//! binary with `include_str!` and overridable by a path to a TOML file wherever a name is taken.

pub mod attention_table;
pub mod gemm_table;
pub mod hardware;
pub mod hf;
pub mod model;
pub mod network;
pub(crate) mod toml_error;

use crate::error::{Error, Result};
pub use gemm_table::{GemmPoint, GemmTable};
pub use hardware::{GpuSpec, Sourced};
pub use model::ModelSpec;
pub use network::NetworkSpec;
use std::path::Path;

/// Embedded model specs: (name, TOML text).
pub const MODELS: &[(&str, &str)] = &[
    ("jit-b4", include_str!("../../models/jit-b4.toml")),
    ("jit-b16", include_str!("../../models/jit-b16.toml")),
    ("jit-l16", include_str!("../../models/jit-l16.toml")),
    ("jit-h16", include_str!("../../models/jit-h16.toml")),
    ("dit-xl2", include_str!("../../models/dit-xl2.toml")),
    ("gpt2-124m", include_str!("../../models/gpt2-124m.toml")),
    ("llama2-7b", include_str!("../../models/llama2-7b.toml")),
    ("llama3-8b", include_str!("../../models/llama3-8b.toml")),
    ("llama3-70b", include_str!("../../models/llama3-70b.toml")),
    (
        "llama3.1-405b",
        include_str!("../../models/llama3.1-405b.toml"),
    ),
    ("mistral-7b", include_str!("../../models/mistral-7b.toml")),
    (
        "mixtral-8x7b",
        include_str!("../../models/mixtral-8x7b.toml"),
    ),
    ("qwen2.5-7b", include_str!("../../models/qwen2.5-7b.toml")),
    ("qwen2.5-72b", include_str!("../../models/qwen2.5-72b.toml")),
    (
        "megatron-22b",
        include_str!("../../models/megatron-22b.toml"),
    ),
    ("gpt3-175b", include_str!("../../models/gpt3-175b.toml")),
    ("mt-nlg-530b", include_str!("../../models/mt-nlg-530b.toml")),
    ("megatron-1t", include_str!("../../models/megatron-1t.toml")),
    ("mpt-125m", include_str!("../../models/mpt-125m.toml")),
    ("mpt-350m", include_str!("../../models/mpt-350m.toml")),
    ("mpt-760m", include_str!("../../models/mpt-760m.toml")),
    ("mpt-1b", include_str!("../../models/mpt-1b.toml")),
    ("mpt-3b", include_str!("../../models/mpt-3b.toml")),
    ("mpt-7b", include_str!("../../models/mpt-7b.toml")),
    ("mpt-13b", include_str!("../../models/mpt-13b.toml")),
    ("mpt-30b", include_str!("../../models/mpt-30b.toml")),
];

/// Embedded GPU specs: (name, TOML text).
pub const GPUS: &[(&str, &str)] = &[
    (
        "h200-sxm",
        include_str!("../../models/hardware/h200-sxm.toml"),
    ),
    (
        "h100-sxm",
        include_str!("../../models/hardware/h100-sxm.toml"),
    ),
    (
        "h100-pcie",
        include_str!("../../models/hardware/h100-pcie.toml"),
    ),
    (
        "a100-sxm-80gb",
        include_str!("../../models/hardware/a100-sxm-80gb.toml"),
    ),
    ("b200", include_str!("../../models/hardware/b200.toml")),
    ("mi300x", include_str!("../../models/hardware/mi300x.toml")),
    ("l40s", include_str!("../../models/hardware/l40s.toml")),
];

/// Reads `name_or_path`: an embedded name, or a path to a file (anything containing a path
/// separator, ending in `.toml` or `.json`, or naming an existing file). Returns the text and
/// the label used in error messages.
fn lookup(
    what: &'static str,
    name_or_path: &str,
    table: &[(&str, &str)],
) -> Result<(String, String)> {
    if let Some((_, text)) = table.iter().find(|(n, _)| *n == name_or_path) {
        return Ok((text.to_string(), format!("embedded:{name_or_path}")));
    }
    let looks_like_path = name_or_path.ends_with(".toml")
        || name_or_path.ends_with(".json")
        || name_or_path.contains(std::path::MAIN_SEPARATOR)
        || name_or_path.contains('/')
        || Path::new(name_or_path).is_file();
    if looks_like_path {
        let path = Path::new(name_or_path);
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        return Ok((text, name_or_path.to_string()));
    }
    // Case-insensitive names, then the aliases the files list.
    let lower = name_or_path.to_ascii_lowercase();
    if let Some((n, text)) = table.iter().find(|(n, _)| n.to_ascii_lowercase() == lower) {
        return Ok((text.to_string(), format!("embedded:{n}")));
    }
    #[derive(serde::Deserialize)]
    struct Aliases {
        #[serde(default)]
        aliases: Vec<String>,
    }
    for (n, text) in table {
        let listed = toml::from_str::<Aliases>(text).map_or(Vec::new(), |a| a.aliases);
        if listed.iter().any(|a| a.to_ascii_lowercase() == lower) {
            return Ok((text.to_string(), format!("embedded:{n}")));
        }
    }
    let known: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
    Err(Error::unknown_spec(what, name_or_path, &known))
}

/// Resolves a model by embedded name or path: a TOML spec, or a Hugging Face `config.json`
/// (a `.json` file, or any file whose content is a JSON object; see [`hf`]), whose import notes
/// land in [`ModelSpec::notes`].
pub fn load_model(name_or_path: &str) -> Result<ModelSpec> {
    let (text, label) = lookup("model", name_or_path, MODELS)?;
    if name_or_path.ends_with(".json") || text.trim_start().starts_with('{') {
        let stem = Path::new(name_or_path)
            .file_stem()
            .map_or_else(|| "imported".into(), |s| s.to_string_lossy().into_owned());
        return Ok(hf::import(&text, &label, &stem)?.model);
    }
    ModelSpec::from_toml(&text, &label)
}

/// Resolves a GPU by embedded name or path.
pub fn load_gpu(name_or_path: &str) -> Result<GpuSpec> {
    let (text, label) = lookup("GPU", name_or_path, GPUS)?;
    GpuSpec::from_toml(&text, &label)
}

/// Embedded cluster networks: (name, TOML text).
pub const NETWORKS: &[(&str, &str)] = &[
    (
        "ib-ndr-8x400",
        include_str!("../../models/network/ib-ndr-8x400.toml"),
    ),
    (
        "ib-hdr-8x200",
        include_str!("../../models/network/ib-hdr-8x200.toml"),
    ),
];

/// Loads a network by embedded name or TOML path.
pub fn load_network(name_or_path: &str) -> Result<NetworkSpec> {
    let (text, label) = lookup("network", name_or_path, NETWORKS)?;
    NetworkSpec::from_toml(&text, &label)
}

/// The embedded GPU spec whose name matches a device name reported by the driver.
pub fn gpu_for_device(device: &str) -> Option<&'static str> {
    let d = device.to_ascii_uppercase();
    if d.contains("H200") {
        Some("h200-sxm")
    } else if d.contains("H100") && d.contains("PCIE") {
        Some("h100-pcie")
    } else if d.contains("H100") {
        Some("h100-sxm")
    } else if d.contains("A100") {
        Some("a100-sxm-80gb")
    } else if d.contains("B200") {
        Some("b200")
    } else if d.contains("L40S") {
        Some("l40s")
    } else if d.contains("MI300X") {
        Some("mi300x")
    } else {
        None
    }
}
