//! Physical quantities as newtypes, so that FLOPs, bytes, seconds and rates cannot be mixed.
//!
//! All quantities are `f64` in SI base units: a count of floating-point operations, a count of
//! bytes, seconds, FLOP/s and bytes/s. `f64` holds sizes up to 1e15 tokens and 1e12 parameters
//! without overflow (it is exact for integers below 2^53 ~ 9e15 and degrades gracefully above).
//! Division of a quantity by a rate gives [`Seconds`]; the operators below are the only way to do it.

use serde::{Serialize, Serializer};
use std::fmt;
use std::ops::{Add, AddAssign, Div, Mul, Sub};

macro_rules! quantity {
    ($(#[$doc:meta])* $name:ident, $unit:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
        pub struct $name(pub f64);

        impl $name {
            /// The zero quantity.
            pub const ZERO: Self = Self(0.0);
            /// The raw value in SI base units.
            pub fn get(self) -> f64 {
                self.0
            }
            /// The unit symbol printed after the value.
            pub const UNIT: &'static str = $unit;
            /// Larger of two quantities.
            pub fn max(self, other: Self) -> Self {
                Self(self.0.max(other.0))
            }
        }
        impl Add for $name {
            type Output = Self;
            fn add(self, o: Self) -> Self {
                Self(self.0 + o.0)
            }
        }
        impl Sub for $name {
            type Output = Self;
            fn sub(self, o: Self) -> Self {
                Self(self.0 - o.0)
            }
        }
        impl AddAssign for $name {
            fn add_assign(&mut self, o: Self) {
                self.0 += o.0;
            }
        }
        impl Mul<f64> for $name {
            type Output = Self;
            fn mul(self, k: f64) -> Self {
                Self(self.0 * k)
            }
        }
        impl Div<f64> for $name {
            type Output = Self;
            fn div(self, k: f64) -> Self {
                Self(self.0 / k)
            }
        }
        impl Div for $name {
            /// The ratio of two quantities of one kind.
            type Output = f64;
            fn div(self, o: Self) -> f64 {
                self.0 / o.0
            }
        }
        impl std::iter::Sum for $name {
            fn sum<I: Iterator<Item = Self>>(it: I) -> Self {
                Self(it.map(|q| q.0).sum())
            }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_f64(self.0)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", si(self.0), $unit)
            }
        }
    };
}

quantity!(
    /// A count of floating-point operations (a multiply-add is 2).
    Flops,
    "FLOP"
);
quantity!(
    /// A count of bytes.
    Bytes,
    "B"
);
quantity!(
    /// A duration in seconds.
    Seconds,
    "s"
);
quantity!(
    /// A compute rate in FLOP/s.
    FlopRate,
    "FLOP/s"
);
quantity!(
    /// A bandwidth in bytes/s.
    ByteRate,
    "B/s"
);

impl Div<FlopRate> for Flops {
    type Output = Seconds;
    fn div(self, r: FlopRate) -> Seconds {
        Seconds(self.0 / r.0)
    }
}
impl Div<ByteRate> for Bytes {
    type Output = Seconds;
    fn div(self, r: ByteRate) -> Seconds {
        Seconds(self.0 / r.0)
    }
}
impl Div<Seconds> for Flops {
    type Output = FlopRate;
    fn div(self, t: Seconds) -> FlopRate {
        FlopRate(self.0 / t.0)
    }
}
impl Div<Seconds> for Bytes {
    type Output = ByteRate;
    fn div(self, t: Seconds) -> ByteRate {
        ByteRate(self.0 / t.0)
    }
}
impl Div<Bytes> for Flops {
    /// Arithmetic intensity in FLOP/byte.
    type Output = f64;
    fn div(self, b: Bytes) -> f64 {
        if b.0 > 0.0 {
            self.0 / b.0
        } else {
            f64::INFINITY
        }
    }
}

/// Formats a value with an SI prefix (k, M, G, T, P, E) and three significant digits; from
/// 1e21 on in scientific notation.
pub fn si(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a >= 1e21 {
        return format!("{v:.2e} ");
    }
    let (scale, prefix) = if a >= 1e18 {
        (1e18, "E")
    } else if a >= 1e15 {
        (1e15, "P")
    } else if a >= 1e12 {
        (1e12, "T")
    } else if a >= 1e9 {
        (1e9, "G")
    } else if a >= 1e6 {
        (1e6, "M")
    } else if a >= 1e3 {
        (1e3, "k")
    } else if a >= 1.0 || a == 0.0 {
        (1.0, "")
    } else if a >= 1e-3 {
        (1e-3, "m")
    } else if a >= 1e-6 {
        (1e-6, "u")
    } else {
        (1e-9, "n")
    };
    let x = v / scale;
    let digits = if x.abs() >= 100.0 {
        0
    } else if x.abs() >= 10.0 {
        1
    } else {
        2
    };
    format!("{x:.digits$} {prefix}")
}

/// Formats a byte count in binary units (KiB, MiB, GiB, TiB), as memory capacities are read.
pub fn binary_bytes(b: Bytes) -> String {
    let v = b.0;
    let units = [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (name, scale) in units {
        if v.abs() >= scale as f64 {
            return format!("{:.2} {name}", v / scale as f64);
        }
    }
    format!("{v:.0} B")
}

/// Formats a duration for people: ms below a second, then s, min, h, days.
pub fn human_duration(t: Seconds) -> String {
    let s = t.0;
    if !s.is_finite() {
        return format!("{s}");
    }
    if s == 0.0 {
        "0 s".to_string()
    } else if s < 1e-3 {
        format!("{:.1} us", s * 1e6)
    } else if s < 1.0 {
        format!("{:.2} ms", s * 1e3)
    } else if s < 120.0 {
        format!("{s:.2} s")
    } else if s < 7200.0 {
        format!("{:.1} min", s / 60.0)
    } else if s < 3.0 * 86400.0 {
        format!("{:.1} h", s / 3600.0)
    } else if s < 3.0 * 365.25 * 86400.0 {
        format!("{:.1} days", s / 86400.0)
    } else {
        format!("{} years", si(s / (365.25 * 86400.0)).trim_end())
    }
}

/// Parses a count with an optional suffix: K (1e3), M (1e6), B or G (1e9), T (1e12), P (1e15).
pub fn parse_count_f64(s: &str) -> std::result::Result<f64, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1e3,
                'M' => 1e6,
                'B' | 'G' => 1e9,
                'T' => 1e12,
                'P' => 1e15,
                _ => {
                    return Err(format!(
                        "unknown suffix `{c}` in `{s}` (use K, M, B/G, T or P)"
                    ))
                }
            };
            (&t[..t.len() - 1], m)
        }
        _ => (t, 1.0),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    let v = v * mult;
    if !v.is_finite() || v <= 0.0 {
        return Err(format!("`{s}` must be a positive finite number"));
    }
    Ok(v)
}

/// [`parse_count_f64`] for whole counts.
pub fn parse_count_u64(s: &str) -> std::result::Result<u64, String> {
    let v = parse_count_f64(s)?;
    if v.fract() != 0.0 || v > 9.0e15 {
        return Err(format!("`{s}` must be a whole number up to 9e15"));
    }
    Ok(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_divide_into_seconds() {
        let t = Flops(2e12) / FlopRate(1e12);
        assert_eq!(t, Seconds(2.0));
        let t = Bytes(3e9) / ByteRate(1.5e9);
        assert_eq!(t, Seconds(2.0));
        assert_eq!(Flops(10.0) / Bytes(5.0), 2.0);
        assert!((Flops(1.0) / Bytes(0.0)).is_infinite());
    }

    #[test]
    fn si_prefixes() {
        assert_eq!(si(989.4e12), "989 T");
        assert_eq!(si(4.2e-3), "4.20 m");
        assert_eq!(si(0.0), "0.00 ");
        assert_eq!(binary_bytes(Bytes(1.5 * (1u64 << 30) as f64)), "1.50 GiB");
        assert_eq!(human_duration(Seconds(2.5 * 86400.0 * 10.0)), "25.0 days");
    }
}
