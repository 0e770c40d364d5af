//! Sensitivity rows in words: each figure of [`crate::time::FIGURES`] named for people, with its
//! values in units ("HBM bandwidth 3.84–5.76 TB/s"); the dotted field name stays in the JSON.

/// How a figure's values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A fraction shown in percent (achievable fractions, efficiencies).
    Percent,
    /// Bytes per second, decimal prefixes (TB/s).
    BytesPerSecond,
    /// Bytes, binary prefixes (MiB).
    Bytes,
    /// Seconds, with ms / µs / ns.
    Seconds,
    /// Tokens.
    Tokens,
    /// A factor applied to the file's values (x0.8).
    Factor,
    /// A number without unit.
    Plain,
}

/// The words and unit of a figure (by its dotted name); unknown names are shown as they are.
pub fn describe(name: &str) -> (String, Unit) {
    use Unit::*;
    let (words, unit) = match name {
        n if n.starts_with("peak_flops") => ("dense FLOP/s peaks (all together)", Factor),
        "achievable.bf16_tensor" => ("achievable share of the bf16 tensor peak", Percent),
        "achievable.fp8_tensor" => ("achievable share of the fp8 tensor peak", Percent),
        "achievable.tf32_tensor" => ("achievable share of the tf32 tensor peak", Percent),
        "achievable.fp32_vector" => ("achievable share of the fp32 vector peak", Percent),
        "achievable.hbm" => ("achievable share of HBM bandwidth", Percent),
        "achievable.eager_elementwise" => {
            ("HBM bandwidth share of eager elementwise kernels", Percent)
        }
        "achievable.misaligned_gemm" => (
            "ceiling of eager GEMMs with a misaligned dimension",
            Percent,
        ),
        "memory.hbm_bandwidth" => ("HBM bandwidth", BytesPerSecond),
        "memory.l2_bandwidth" => ("L2 cache bandwidth", BytesPerSecond),
        "memory.l2_bytes" => ("L2 cache size", Bytes),
        "gemm_k0" => ("GEMM small-K constant k0 (elements)", Plain),
        "launch.kernel_launch_s" => ("gap between kernels", Seconds),
        "launch.host_dispatch_s" => ("host dispatch per eager kernel", Seconds),
        "launch.graph_launch_s" => ("launch per kernel in a CUDA graph", Seconds),
        "interconnect.allreduce_bus_bandwidth" => ("all-reduce bus bandwidth", BytesPerSecond),
        "interconnect.allreduce_latency_s" => ("all-reduce latency", Seconds),
        "attention.seq_half" => ("fused attention: length at half efficiency", Tokens),
        "attention.flash1_fwd" => ("FlashAttention (v1) forward efficiency", Percent),
        "attention.flash1_bwd" => ("FlashAttention (v1) backward efficiency", Percent),
        "attention.flash2_fwd" => ("FlashAttention-2 forward efficiency", Percent),
        "attention.flash2_bwd" => ("FlashAttention-2 backward efficiency", Percent),
        "attention.flash3_fwd" => ("FlashAttention-3 forward efficiency", Percent),
        "attention.flash3_bwd" => ("FlashAttention-3 backward efficiency", Percent),
        "attention.causal_factor" => ("causal attention work factor", Plain),
        "attention.flash2_max" => ("FlashAttention-2 highest published efficiency", Percent),
        "attention.flash3_max" => ("FlashAttention-3 highest published efficiency", Percent),
        other => return (other.to_string(), Plain),
    };
    (words.to_string(), unit)
}

/// Up to three significant digits, trailing zeros dropped.
fn digits(x: f64) -> String {
    let d = if x.abs() >= 100.0 {
        0
    } else if x.abs() >= 10.0 {
        1
    } else {
        2
    };
    let t = format!("{x:.d$}");
    if t.contains('.') {
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        t
    }
}

/// The scale and suffix of `unit` for values up to `v`.
fn scale(unit: Unit, v: f64) -> (f64, &'static str) {
    let v = v.abs();
    match unit {
        Unit::Percent => (0.01, "%"),
        Unit::Factor | Unit::Plain => (1.0, ""),
        Unit::Tokens => (1.0, " tokens"),
        Unit::Bytes => [(40, " TiB"), (30, " GiB"), (20, " MiB"), (10, " KiB")]
            .into_iter()
            .map(|(e, s)| ((1u64 << e) as f64, s))
            .find(|(f, _)| v >= *f)
            .unwrap_or((1.0, " B")),
        Unit::BytesPerSecond => [(1e12, " TB/s"), (1e9, " GB/s"), (1e6, " MB/s")]
            .into_iter()
            .find(|(f, _)| v >= *f)
            .unwrap_or((1.0, " B/s")),
        Unit::Seconds => [(1.0, " s"), (1e-3, " ms"), (1e-6, " µs")]
            .into_iter()
            .find(|(f, _)| v >= *f)
            .unwrap_or((1e-9, " ns")),
    }
}

/// One value with its unit: "4.8 TB/s", "79%", "x1.2", "4 µs".
pub fn value(unit: Unit, v: f64) -> String {
    let (f, s) = scale(unit, v);
    let prefix = if unit == Unit::Factor { "x" } else { "" };
    format!("{prefix}{}{s}", digits(v / f))
}

/// A range with one unit: "3.84–5.76 TB/s", "70–90%", "x0.8–1.2".
pub fn range(unit: Unit, lo: f64, hi: f64) -> String {
    let (f, s) = scale(unit, lo.abs().max(hi.abs()));
    let prefix = if unit == Unit::Factor { "x" } else { "" };
    format!("{prefix}{}–{}{s}", digits(lo / f), digits(hi / f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_read_in_units() {
        let (w, u) = describe("memory.hbm_bandwidth");
        assert_eq!(
            format!("{w} {}", range(u, 3.84e12, 5.76e12)),
            "HBM bandwidth 3.84–5.76 TB/s"
        );
        assert_eq!(range(Unit::Percent, 0.7, 0.9), "70–90%");
        assert_eq!(range(Unit::Seconds, 2.5e-6, 8e-6), "2.5–8 µs");
        assert_eq!(range(Unit::Bytes, 50331648.0, 75497472.0), "48–72 MiB");
        assert_eq!(value(Unit::Factor, 1.0), "x1");
        assert_eq!(value(Unit::BytesPerSecond, 3.656e11), "366 GB/s");
    }
}
