//! Where the roofline chart's labels go, in pixels: every marker and every roof line is an
//! obstacle; a label takes the first candidate position, nearest first, that stays inside the
//! plot and touches no obstacle and no label placed before it, or is dropped. Kept apart from the
//! drawing so that a test can check the result ([`super::RooflineChart::layout`]).

/// Axis-aligned pixel rectangle (x0, y0 top-left; x1, y1 bottom-right).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left.
    pub x0: i32,
    /// Top.
    pub y0: i32,
    /// Right.
    pub x1: i32,
    /// Bottom.
    pub y1: i32,
}

impl Rect {
    /// A square of half-width `r` around `c`.
    pub fn around(c: (i32, i32), r: i32) -> Self {
        Rect {
            x0: c.0 - r,
            y0: c.1 - r,
            x1: c.0 + r,
            y1: c.1 + r,
        }
    }

    /// Whether the two share any pixel area.
    pub fn overlaps(&self, o: &Rect) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }

    /// Whether `self` lies within `b`.
    pub fn inside(&self, b: &Rect) -> bool {
        self.x0 >= b.x0 && self.x1 <= b.x1 && self.y0 >= b.y0 && self.y1 <= b.y1
    }

    /// Whether the segment from `a` to `b` passes through the rectangle (Liang-Barsky clipping).
    pub fn crosses(&self, a: (i32, i32), b: (i32, i32)) -> bool {
        let (x0, y0) = (a.0 as f64, a.1 as f64);
        let (dx, dy) = ((b.0 - a.0) as f64, (b.1 - a.1) as f64);
        let (mut t0, mut t1) = (0.0f64, 1.0f64);
        for (p, q) in [
            (-dx, x0 - self.x0 as f64),
            (dx, self.x1 as f64 - x0),
            (-dy, y0 - self.y0 as f64),
            (dy, self.y1 as f64 - y0),
        ] {
            if p == 0.0 {
                if q < 0.0 {
                    return false;
                }
            } else {
                let t = q / p;
                if p < 0.0 {
                    t0 = t0.max(t);
                } else {
                    t1 = t1.min(t);
                }
                if t0 > t1 {
                    return false;
                }
            }
        }
        true
    }
}

/// A label and where it went.
#[derive(Debug, Clone)]
pub struct Placed {
    /// The text.
    pub text: String,
    /// Its box (text plus a 2-pixel margin).
    pub rect: Rect,
    /// The point it names, when a leader line joins them.
    pub leader: Option<(i32, i32)>,
}

/// The chart's geometry in pixels: obstacles and the labels placed among them.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// The plotting area.
    pub bounds: Option<Rect>,
    /// Markers (ops, measured kernels, ridge points).
    pub markers: Vec<Rect>,
    /// Roof lines.
    pub segments: Vec<((i32, i32), (i32, i32))>,
    /// Labels, in placement order.
    pub labels: Vec<Placed>,
}

impl Layout {
    /// Whether `r` is free: inside the plot, off every marker, roof line and placed label.
    pub fn free(&self, r: &Rect) -> bool {
        self.bounds.is_none_or(|b| r.inside(&b))
            && !self.markers.iter().any(|m| m.overlaps(r))
            && !self.segments.iter().any(|s| r.crosses(s.0, s.1))
            && !self.labels.iter().any(|l| l.rect.overlaps(r))
    }

    /// Places `text` of `size` at the first free box among `boxes` (top-left corners).
    pub fn place_at(
        &mut self,
        text: &str,
        size: (i32, i32),
        boxes: impl IntoIterator<Item = (i32, i32)>,
    ) -> bool {
        for (x, y) in boxes {
            let r = Rect {
                x0: x - 2,
                y0: y - 1,
                x1: x + size.0 + 2,
                y1: y + size.1 + 1,
            };
            if self.free(&r) {
                self.labels.push(Placed {
                    text: text.to_string(),
                    rect: r,
                    leader: None,
                });
                return true;
            }
        }
        false
    }

    /// Places `text` near `anchor`, `gap` pixels off it, trying 16 directions on rings of
    /// growing distance; beyond the first ring a leader line joins label and anchor (and must
    /// not cross a roof line). Returns whether it found room.
    pub fn place_near(
        &mut self,
        text: &str,
        size: (i32, i32),
        anchor: (i32, i32),
        gap: i32,
    ) -> bool {
        let (ax, ay) = anchor;
        let (w, h) = size;
        for (ring, extra) in [0, 12, 26, 44, 66, 92, 124, 160].into_iter().enumerate() {
            let g = (gap + extra) as f64;
            for k in 0..16 {
                let a = std::f64::consts::PI * 2.0 * k as f64 / 16.0;
                let (cx, cy) = (ax as f64 + g * a.cos(), ay as f64 - g * a.sin());
                // The box's nearest corner or edge touches the ring point.
                let x = if a.cos() > 0.3 {
                    cx
                } else if a.cos() < -0.3 {
                    cx - w as f64
                } else {
                    cx - w as f64 / 2.0
                } as i32;
                let y = if a.sin() > 0.3 {
                    cy - h as f64
                } else if a.sin() < -0.3 {
                    cy
                } else {
                    cy - h as f64 / 2.0
                } as i32;
                let r = Rect {
                    x0: x - 2,
                    y0: y - 1,
                    x1: x + w + 2,
                    y1: y + h + 1,
                };
                if !self.free(&r) {
                    continue;
                }
                let leader = (ring > 0).then(|| {
                    let end = (
                        ((r.x0 + r.x1) / 2).clamp(r.x0, r.x1),
                        if r.y1 < ay { r.y1 } else { r.y0 },
                    );
                    (anchor, end)
                });
                if let Some((a, e)) = leader {
                    // A leader crosses no roof line and no other label.
                    if self.segments.iter().any(|s| segments_cross(a, e, s.0, s.1))
                        || self.labels.iter().any(|l| l.rect.crosses(a, e))
                    {
                        continue;
                    }
                }
                self.labels.push(Placed {
                    text: text.to_string(),
                    rect: r,
                    leader: leader.map(|(a, _)| a),
                });
                return true;
            }
        }
        false
    }
}

/// Whether segments p1-p2 and q1-q2 properly cross.
fn segments_cross(p1: (i32, i32), p2: (i32, i32), q1: (i32, i32), q2: (i32, i32)) -> bool {
    let o = |a: (i32, i32), b: (i32, i32), c: (i32, i32)| {
        let v = (b.0 - a.0) as i64 * (c.1 - a.1) as i64 - (b.1 - a.1) as i64 * (c.0 - a.0) as i64;
        v.signum()
    };
    o(p1, p2, q1) * o(p1, p2, q2) < 0 && o(q1, q2, p1) * o(q1, q2, p2) < 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_and_boxes() {
        let r = Rect {
            x0: 0,
            y0: 0,
            x1: 10,
            y1: 10,
        };
        assert!(r.crosses((-5, 5), (15, 5)));
        assert!(r.crosses((-5, -5), (15, 15)));
        assert!(!r.crosses((-5, 12), (15, 12)));
        assert!(!r.crosses((11, -5), (30, 20)));
        assert!(segments_cross((0, 0), (10, 10), (0, 10), (10, 0)));
        assert!(!segments_cross((0, 0), (10, 0), (0, 5), (10, 5)));
        let mut l = Layout {
            bounds: Some(Rect {
                x0: 0,
                y0: 0,
                x1: 400,
                y1: 400,
            }),
            segments: vec![((0, 200), (400, 200))],
            ..Layout::default()
        };
        assert!(l.place_near("a", (40, 12), (200, 190), 4));
        assert!(l.place_near("b", (40, 12), (200, 190), 4));
        let (a, b) = (l.labels[0].rect, l.labels[1].rect);
        assert!(!a.overlaps(&b));
        assert!(!a.crosses((0, 200), (400, 200)) && !b.crosses((0, 200), (400, 200)));
    }
}
