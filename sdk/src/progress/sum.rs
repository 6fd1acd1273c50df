//! An exact sum of floating-point values: the same result whatever the order the values come in,
//! and whether they are added one by one or as sums of parts merged later.
//!
//! A floating-point fold depends on its order (`(a + b) + c` need not equal `a + (b + c)`), so a
//! total kept up to date one activity at a time could drift from one recomputed from every
//! activity. This keeps the exact sum as non-overlapping partials (Shewchuk's algorithm, as
//! Python's `math.fsum`) and rounds once, correctly, when read. Usually one or two partials.
//!
//! Past the f64 range (a sum above ~1.8e308) the result is infinite and, there only, may depend on
//! the order; the calculators turn infinities into "no value" (`sanitize`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The exact sum of the values added so far.
///
/// Stored compactly (it is most of a goal's progress state, `store/state.rs`): a whole number
/// that is the only partial as an integer, otherwise the partials as a list, and a sum that left
/// the range as the list of its one infinity.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExactSum {
    /// Non-overlapping, by increasing magnitude; their exact sum is the sum.
    partials: Vec<f64>,
    /// Set once an intermediate sum left the f64 range: the sum is this infinity.
    overflow: Option<f64>,
}

impl ExactSum {
    /// Adds `x` (a finite number; others are ignored).
    pub fn add(&mut self, x: f64) {
        if !x.is_finite() || self.overflow.is_some() {
            return;
        }
        let mut x = x;
        let mut kept = 0;
        for j in 0..self.partials.len() {
            let mut y = self.partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            if !hi.is_finite() {
                self.overflow = Some(hi);
                self.partials.clear();
                return;
            }
            let lo = y - (hi - x);
            if lo != 0.0 {
                self.partials[kept] = lo;
                kept += 1;
            }
            x = hi;
        }
        self.partials.truncate(kept);
        self.partials.push(x);
    }

    /// Adds everything `other` holds.
    pub fn merge(&mut self, other: &ExactSum) {
        if let Some(infinite) = other.overflow {
            if self.overflow.is_none() {
                self.overflow = Some(infinite);
                self.partials.clear();
            }
            return;
        }
        for partial in &other.partials {
            self.add(*partial);
        }
    }

    /// The sum, correctly rounded (ties to even), as `math.fsum` rounds it.
    pub fn value(&self) -> f64 {
        if let Some(infinite) = self.overflow {
            return infinite;
        }
        let partials = &self.partials;
        let Some(mut n) = partials.len().checked_sub(1) else {
            return 0.0;
        };
        let mut hi = partials[n];
        let mut lo = 0.0;
        while n > 0 {
            let x = hi;
            n -= 1;
            let y = partials[n];
            hi = x + y;
            let y_rounded = hi - x;
            lo = y - y_rounded;
            if lo != 0.0 {
                break;
            }
        }
        // Round half to even across the partials left below: if the next one has the sign of
        // `lo`, the exact sum is past the halfway point `hi + lo` was rounded from.
        if n > 0 && ((lo < 0.0 && partials[n - 1] < 0.0) || (lo > 0.0 && partials[n - 1] > 0.0)) {
            let y = lo * 2.0;
            let x = hi + y;
            let y_rounded = x - hi;
            if y == y_rounded {
                hi = x;
            }
        }
        hi
    }
}

/// Integers up to this magnitude are exact in an f64.
const EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

impl Serialize for ExactSum {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match (self.overflow, self.partials.as_slice()) {
            (Some(infinite), _) => [infinite].serialize(serializer),
            (None, [x]) if x.fract() == 0.0 && x.abs() < EXACT_INTEGER && *x != 0.0 => {
                (*x as i64).serialize(serializer)
            }
            (None, partials) => partials.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for ExactSum {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Whole(i64),
            Partials(Vec<f64>),
        }
        Ok(match Stored::deserialize(deserializer)? {
            Stored::Whole(x) => ExactSum {
                partials: vec![x as f64],
                overflow: None,
            },
            Stored::Partials(partials) => match partials.as_slice() {
                [x] if x.is_infinite() => ExactSum {
                    partials: Vec::new(),
                    overflow: Some(*x),
                },
                _ => ExactSum {
                    partials,
                    overflow: None,
                },
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_sums_read_back_equal() {
        let cases: Vec<Vec<f64>> = vec![
            vec![],
            vec![0.0],
            vec![-0.0],
            vec![3.0],
            vec![-7.0, 2.0],
            vec![0.1, 0.2, 0.3],
            vec![1e16, 1.0, 1e-16],
            vec![f64::MAX, f64::MAX],
            vec![-f64::MAX, -f64::MAX],
        ];
        for values in cases {
            let mut exact = ExactSum::default();
            values.iter().for_each(|v| exact.add(*v));
            let bytes = rmp_serde::to_vec(&exact).expect("encodes");
            let back: ExactSum = rmp_serde::from_slice(&bytes).expect("decodes");
            assert_eq!(back, exact, "{values:?}");
            assert_eq!(
                back.value().to_bits(),
                exact.value().to_bits(),
                "{values:?}"
            );
        }
        let mut whole = ExactSum::default();
        whole.add(12.0);
        assert_eq!(
            rmp_serde::to_vec(&whole).expect("encodes").len(),
            1,
            "a small whole number"
        );
    }

    fn sum(values: &[f64]) -> f64 {
        let mut exact = ExactSum::default();
        for v in values {
            exact.add(*v);
        }
        exact.value()
    }

    #[test]
    fn sums_exactly_in_any_order() {
        assert_eq!(sum(&[]), 0.0);
        assert_eq!(sum(&[0.1, 0.2, 0.3]), 0.6);
        assert_eq!(sum(&[0.3, 0.2, 0.1]), 0.6);
        // A fold loses the 1.0 between the large values; the exact sum keeps it.
        assert_eq!(sum(&[1e100, 1.0, -1e100]), 1.0);
        assert_eq!(sum(&[1e16, 1.0, 1e-16]), 1.0000000000000002e16);
        let values: Vec<f64> = (1..=1000).map(|i| 1.0 / f64::from(i)).collect();
        let mut reversed = values.clone();
        reversed.reverse();
        assert_eq!(sum(&values), sum(&reversed));
        let (left, right) = values.split_at(377);
        let mut merged = ExactSum::default();
        let mut other = ExactSum::default();
        left.iter().for_each(|v| merged.add(*v));
        right.iter().for_each(|v| other.add(*v));
        merged.merge(&other);
        assert_eq!(merged.value(), sum(&values));
    }

    #[test]
    fn leaving_the_range_is_infinite_and_stays_so() {
        let mut exact = ExactSum::default();
        exact.add(f64::MAX);
        exact.add(f64::MAX);
        assert_eq!(exact.value(), f64::INFINITY);
        exact.add(-1.0);
        assert_eq!(exact.value(), f64::INFINITY);
        exact.add(f64::NAN);
        assert_eq!(exact.value(), f64::INFINITY);
    }
}
