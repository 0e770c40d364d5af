//! `roofline._native`: the roofline crate's command-line contract inside Python. Every function
//! takes the options as the words a user types on the command line and goes through the same
//! parse, conversion and JSON builders as `roofline COMMAND --json` (`roofline::cli::embed`);
//! the `roofline` Python package turns keywords into those words. The work runs with the GIL
//! released, a Rust panic becomes `roofline.InternalError`, and every error a user can cause
//! becomes `roofline.SpecError` (a `ValueError`) naming the file, field and value.

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use roofline::analysis::sweep::{self as sweeps, Column};
use roofline::cli::embed;
use roofline::error::Error;
use serde_json::Value;

pyo3::create_exception!(
    _native,
    SpecError,
    PyValueError,
    "Bad input (a spec file's field, an option, a name, a file): what the CLI reports with exit \
     code 2, with the same message. Attributes: kind, file, field, value, problem."
);
pyo3::create_exception!(
    _native,
    InternalError,
    PyRuntimeError,
    "A bug in roofline (the CLI's exit code 1, or a Rust panic)."
);

/// The value of a dotted `field` in the TOML or JSON spec named `file` (an embedded name, a
/// path, or the text of a dict), as text; None when it cannot be found.
fn field_value(file: &str, field: &str, text: Option<&str>) -> Option<String> {
    let owned;
    let text = match text {
        Some(t) => t,
        None => {
            let (kind, name) = file.split_once(':').unwrap_or(("", file));
            owned = match kind {
                "embedded" => roofline::spec::MODELS
                    .iter()
                    .chain(roofline::spec::GPUS)
                    .find(|(n, _)| *n == name)
                    .map(|(_, t)| t.to_string())?,
                _ => std::fs::read_to_string(file).ok()?,
            };
            &owned
        }
    };
    let mut v: Value = match text.trim_start().starts_with('{') {
        true => serde_json::from_str(text).ok()?,
        false => serde_json::to_value(toml::from_str::<toml::Value>(text).ok()?).ok()?,
    };
    for key in field.split('.') {
        v = v.get(key)?.clone();
    }
    Some(match v {
        Value::String(s) => s,
        other => other.to_string(),
    })
}

/// A roofline error as a Python exception; `text` is the spec's text when it came from a dict.
fn py_err(e: Error, text: Option<&str>) -> PyErr {
    let message = e.to_string();
    let (kind, file, field, value, problem): (_, Option<String>, Option<String>, _, _) = match e {
        Error::Spec {
            file,
            field,
            problem,
        } => {
            let value = field_value(&file, &field, text);
            ("spec", Some(file), Some(field), value, Some(problem))
        }
        Error::UnknownName { what, name, .. } => (
            "unknown_name",
            None,
            Some(what.to_string()),
            Some(name),
            None,
        ),
        Error::Usage { option, value, .. } => ("option", None, option, value, None),
        Error::Invalid(m) => ("invalid", None, None, None, Some(m)),
        Error::Io { path, source } => (
            "io",
            Some(path.display().to_string()),
            None,
            None,
            Some(source.to_string()),
        ),
        Error::Gpu(m) => return PyRuntimeError::new_err(m),
        Error::Internal(_) => return InternalError::new_err(message),
    };
    Python::with_gil(|py| {
        let err = SpecError::new_err(message);
        let v = err.value(py);
        let set = |k: &str, x: Option<String>| v.setattr(k, x);
        let _ = (
            set("kind", Some(kind.to_string())),
            set("file", file),
            set("field", field),
            set("value", value),
            set("problem", problem),
        );
        err
    })
}

/// Runs `f` without the GIL; a panic becomes an [`InternalError`].
fn guarded<T: Send>(
    py: Python<'_>,
    text: Option<&str>,
    f: impl FnOnce() -> roofline::error::Result<T> + Send,
) -> PyResult<T> {
    let r = py.allow_threads(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(py_err(e, text)),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into());
            Err(InternalError::new_err(format!(
                "internal error (a bug; please report it): {what}"
            )))
        }
    }
}

/// A JSON value as Python objects (dict, list, int, float, str, bool, None).
fn to_py(py: Python<'_>, v: &Value) -> PyResult<PyObject> {
    Ok(match v {
        Value::Null => py.None(),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any().unbind(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.into_pyobject(py)?.into_any().unbind(),
            (None, Some(u)) => u.into_pyobject(py)?.into_any().unbind(),
            _ => n
                .as_f64()
                .unwrap_or(f64::NAN)
                .into_pyobject(py)?
                .into_any()
                .unbind(),
        },
        Value::String(s) => s.into_pyobject(py)?.into_any().unbind(),
        Value::Array(a) => {
            let items = a
                .iter()
                .map(|x| to_py(py, x))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any().unbind()
        }
        Value::Object(o) => {
            let d = PyDict::new(py);
            for (k, x) in o {
                d.set_item(k, to_py(py, x)?)?;
            }
            d.into_any().unbind()
        }
    })
}

/// What `roofline WORDS... --json` prints, as Python objects.
#[pyfunction]
fn json(py: Python<'_>, words: Vec<String>) -> PyResult<PyObject> {
    let v = guarded(py, None, || embed::json(&words))?;
    to_py(py, &v)
}

/// The options of `roofline COMMAND...`: name, flag, default, help.
#[pyfunction]
fn options(py: Python<'_>, command: Vec<String>) -> PyResult<PyObject> {
    let v = guarded(py, None, || {
        embed::options(&command.iter().map(String::as_str).collect::<Vec<_>>())
    })?;
    to_py(py, &v)
}

/// A byte buffer of plain values (native endianness) for `array`/numpy.
fn bytes_of<T: Copy>(py: Python<'_>, v: &[T], to: impl Fn(T) -> [u8; 8]) -> PyObject {
    let mut b = Vec::with_capacity(v.len() * 8);
    for x in v {
        b.extend_from_slice(&to(*x));
    }
    PyBytes::new(py, &b).into_any().unbind()
}

/// `roofline sweep`: `fixed` are estimate options as words, `vary` the `--vary` specs. Returns
/// (summary, columns): each column (name, kind, data, valid/labels) with data as bytes.
#[pyfunction]
fn sweep(py: Python<'_>, fixed: Vec<String>, vary: Vec<String>) -> PyResult<(PyObject, PyObject)> {
    let (summary, cols) = guarded(py, None, || {
        let base = embed::scenario_spec(&fixed)?;
        let dims = vary
            .iter()
            .map(|v| sweeps::parse_vary(v))
            .collect::<roofline::error::Result<Vec<_>>>()?;
        sweeps::collect_columns(&base, &dims)
    })?;
    let summary = to_py(
        py,
        &serde_json::json!({
            "vary": summary.vary,
            "configurations": summary.configurations,
            "invalid": summary.invalid,
            "eval_seconds": summary.eval_seconds,
        }),
    )?;
    let mask = |py: Python<'_>, valid: &[bool]| {
        let b: Vec<u8> = valid.iter().map(|&x| u8::from(!x)).collect();
        PyBytes::new(py, &b).into_any().unbind()
    };
    let mut out = Vec::new();
    for (name, c) in &cols.columns {
        let item = match c {
            Column::Float { values, valid } => (
                *name,
                "float",
                bytes_of(py, values, f64::to_ne_bytes),
                mask(py, valid),
            ),
            Column::Int { values, valid } => (
                *name,
                "int",
                bytes_of(py, values, i64::to_ne_bytes),
                mask(py, valid),
            ),
            Column::Bool { values, valid } => {
                let b: Vec<u8> = values.iter().map(|&x| u8::from(x)).collect();
                (
                    *name,
                    "bool",
                    PyBytes::new(py, &b).into_any().unbind(),
                    mask(py, valid),
                )
            }
            Column::Text { codes, labels, .. } => {
                let widened: Vec<i64> = codes.iter().map(|&c| i64::from(c)).collect();
                (
                    *name,
                    "text",
                    bytes_of(py, &widened, i64::to_ne_bytes),
                    PyList::new(py, labels)?.into_any().unbind(),
                )
            }
        };
        out.push(item.into_pyobject(py)?.into_any().unbind());
    }
    Ok((summary, PyList::new(py, out)?.into_any().unbind()))
}

/// `roofline plot roofline` as bytes: `format` is "svg" or "png".
#[pyfunction]
#[pyo3(signature = (words, measured, format))]
fn plot_roofline(
    py: Python<'_>,
    words: Vec<String>,
    measured: Option<String>,
    format: &str,
) -> PyResult<PyObject> {
    let format = match format {
        "svg" => roofline::plot::Format::Svg,
        "png" => roofline::plot::Format::Png,
        f => return Err(PyValueError::new_err(format!("format `{f}`: svg or png"))),
    };
    let bytes = guarded(py, None, || {
        embed::plot_roofline(
            &words,
            measured.as_deref().map(std::path::Path::new),
            format,
        )
    })?;
    Ok(PyBytes::new(py, &bytes).into_any().unbind())
}

/// A spec as its TOML file has it (absent fields left out), as JSON.
fn toml_fields(text: &str) -> roofline::error::Result<Value> {
    let t: toml::Value = toml::from_str(text)
        .map_err(|e| Error::Internal(format!("a spec does not read back: {e}")))?;
    serde_json::to_value(t).map_err(|e| Error::Internal(format!("a spec as JSON: {e}")))
}

/// A model spec (embedded name, TOML path or Hugging Face config.json) as a dict of its
/// fields, as its TOML file has them.
#[pyfunction]
fn load_model(py: Python<'_>, name_or_path: String) -> PyResult<PyObject> {
    let v = guarded(py, None, || {
        toml_fields(&roofline::spec::load_model(&name_or_path)?.to_toml()?)
    })?;
    to_py(py, &v)
}

/// A GPU spec (embedded name or TOML path) as a dict of its fields.
#[pyfunction]
fn load_gpu(py: Python<'_>, name_or_path: String) -> PyResult<PyObject> {
    let v = guarded(py, None, || {
        let g = roofline::spec::load_gpu(&name_or_path)?;
        let text = toml::to_string(&g)
            .map_err(|e| Error::Internal(format!("GPU {} as TOML: {e}", g.name)))?;
        toml_fields(&text)
    })?;
    to_py(py, &v)
}

/// `v` without its null fields (TOML has no null: an absent field is left out).
fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.into_iter()
                .filter(|(_, x)| !x.is_null())
                .map(|(k, x)| (k, without_nulls(x)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// A model (`kind` "model") or GPU ("gpu") spec given as JSON text of the TOML's fields,
/// checked as a spec file is, as TOML text; errors name `label` as the file.
#[pyfunction]
fn spec_toml(py: Python<'_>, kind: &str, json: String, label: String) -> PyResult<String> {
    let kind = kind.to_string();
    let text = guarded(py, None, || {
        let v: Value = serde_json::from_str(&json)
            .map_err(|e| Error::spec(&label, "(top level)", format!("not a table: {e}")))?;
        let t = toml::Value::try_from(without_nulls(v))
            .map_err(|e| Error::spec(&label, "(top level)", format!("not a TOML table: {e}")))?;
        toml::to_string(&t)
            .map_err(|e| Error::spec(&label, "(top level)", format!("not a TOML table: {e}")))
    })?;
    guarded(py, Some(&json), || match kind.as_str() {
        "model" => roofline::spec::ModelSpec::from_toml(&text, &label).map(|_| ()),
        "gpu" => roofline::spec::GpuSpec::from_toml(&text, &label).map(|_| ()),
        k => Err(Error::Internal(format!("spec kind {k}"))),
    })?;
    Ok(text)
}

/// Panics inside the guard: for the test that a panic becomes an `InternalError`.
#[pyfunction]
fn _panic_for_tests(py: Python<'_>) -> PyResult<()> {
    guarded(py, None, || -> roofline::error::Result<()> {
        panic!("a test panic")
    })
}

/// The roofline crate inside Python.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("SpecError", m.py().get_type::<SpecError>())?;
    m.add("InternalError", m.py().get_type::<InternalError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(json, m)?)?;
    m.add_function(wrap_pyfunction!(options, m)?)?;
    m.add_function(wrap_pyfunction!(sweep, m)?)?;
    m.add_function(wrap_pyfunction!(plot_roofline, m)?)?;
    m.add_function(wrap_pyfunction!(load_model, m)?)?;
    m.add_function(wrap_pyfunction!(load_gpu, m)?)?;
    m.add_function(wrap_pyfunction!(spec_toml, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_tests, m)?)?;
    Ok(())
}
