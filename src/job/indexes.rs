//! Sets of completion indexes in the compressed interval form the API uses for
//! `status.completedIndexes`, `status.failedIndexes` and `successPolicy.rules[].succeededIndexes`:
//! `"1,3-5,7"`.
//!
//! Formatting follows upstream exactly: intervals are sorted and merged, an interval of two
//! consecutive indexes is written `"4,5"` (never `"4-5"`), longer ones `"3-5"`.
//!
//! Parsing is forgiving, as upstream's is: the field is written by the controller, but a user (or a
//! bug) can put anything in it, and a Job must never stall or panic because of it. Garbage pieces are
//! skipped, indexes at or above `completions` are dropped, an interval crossing `completions` is
//! clipped, overlapping or unsorted pieces are merged.

use std::fmt;

/// A sorted set of non-negative indexes, stored as disjoint, non-adjacent, inclusive intervals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Indexes {
    /// Sorted, disjoint, non-adjacent `(first, last)` inclusive intervals.
    intervals: Vec<(i32, i32)>,
}

impl Indexes {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses `"1,3-5,7"`, keeping only indexes below `completions`. Never fails: unparsable pieces
    /// (`"x"`, `"3-"`, `"-1"`, `"5-2"`) are skipped.
    pub fn parse(s: &str, completions: i32) -> Self {
        let mut out = Self::new();
        if completions <= 0 {
            return out;
        }
        for piece in s.split(',') {
            let piece = piece.trim();
            if piece.is_empty() {
                continue;
            }
            let (first, last) = match piece.split_once('-') {
                Some((a, b)) => match (a.trim().parse::<i64>(), b.trim().parse::<i64>()) {
                    (Ok(a), Ok(b)) => (a, b),
                    _ => continue,
                },
                None => match piece.parse::<i64>() {
                    Ok(a) => (a, a),
                    Err(_) => continue,
                },
            };
            if first < 0 || last < first || first >= i64::from(completions) {
                continue;
            }
            let last = last.min(i64::from(completions) - 1);
            // Both are within [0, completions) so they fit an i32.
            out.insert_range(first as i32, last as i32);
        }
        out
    }

    /// Builds a set from any indexes (negative ones are ignored).
    pub fn from_indexes(it: impl IntoIterator<Item = i32>) -> Self {
        let mut out = Self::new();
        for i in it {
            out.insert(i);
        }
        out
    }

    /// Adds one index. Negative indexes are ignored. Returns whether it was new.
    pub fn insert(&mut self, ix: i32) -> bool {
        if ix < 0 || self.contains(ix) {
            return false;
        }
        self.insert_range(ix, ix);
        true
    }

    /// Adds every index of `first..=last` (ignored when empty or negative).
    pub fn insert_range(&mut self, first: i32, last: i32) {
        if first < 0 || last < first {
            return;
        }
        let (mut first, mut last) = (first, last);
        let mut merged = Vec::with_capacity(self.intervals.len() + 1);
        let mut placed = false;
        for &(a, b) in &self.intervals {
            // Disjoint and not adjacent: keep as is. Use i64 to avoid overflow at i32::MAX.
            if i64::from(b) + 1 < i64::from(first) {
                merged.push((a, b));
            } else if i64::from(last) + 1 < i64::from(a) {
                if !placed {
                    merged.push((first, last));
                    placed = true;
                }
                merged.push((a, b));
            } else {
                first = first.min(a);
                last = last.max(b);
            }
        }
        if !placed {
            merged.push((first, last));
        }
        self.intervals = merged;
    }

    /// Adds every index of `other`.
    pub fn merge(&mut self, other: &Indexes) {
        for &(a, b) in &other.intervals {
            self.insert_range(a, b);
        }
    }

    /// Whether `ix` is in the set.
    pub fn contains(&self, ix: i32) -> bool {
        let pos = self.intervals.partition_point(|&(_, last)| last < ix);
        self.intervals.get(pos).is_some_and(|&(first, _)| first <= ix)
    }

    /// How many indexes the set holds.
    pub fn count(&self) -> usize {
        self.intervals.iter().map(|&(a, b)| (i64::from(b) - i64::from(a) + 1) as usize).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.intervals.is_empty()
    }

    /// The indexes in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = i32> + '_ {
        self.intervals.iter().flat_map(|&(a, b)| a..=b)
    }

    /// The intervals, sorted, inclusive.
    pub fn intervals(&self) -> &[(i32, i32)] {
        &self.intervals
    }

    /// How many indexes of `self` are also in `other`.
    pub fn overlap_count(&self, other: &Indexes) -> usize {
        let (mut i, mut j, mut n) = (0, 0, 0usize);
        while i < self.intervals.len() && j < other.intervals.len() {
            let (a1, b1) = self.intervals[i];
            let (a2, b2) = other.intervals[j];
            let lo = a1.max(a2);
            let hi = b1.min(b2);
            if hi >= lo {
                n += (i64::from(hi) - i64::from(lo) + 1) as usize;
            }
            if b1 < b2 {
                i += 1;
            } else {
                j += 1;
            }
        }
        n
    }

    /// The first `count` indexes in `0..completions` that are not in `self`.
    pub fn first_missing(&self, count: usize, completions: i32) -> Vec<i32> {
        let mut out = Vec::with_capacity(count.min(completions.max(0) as usize));
        let mut candidate = 0i32;
        for &(a, b) in &self.intervals {
            while candidate < completions && out.len() < count && candidate < a {
                out.push(candidate);
                candidate += 1;
            }
            if out.len() >= count || candidate >= completions {
                return out;
            }
            if candidate <= b {
                candidate = b.saturating_add(1);
            }
        }
        while candidate < completions && out.len() < count {
            out.push(candidate);
            candidate += 1;
        }
        out
    }
}

impl fmt::Display for Indexes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, &(a, b)) in self.intervals.iter().enumerate() {
            if n > 0 {
                f.write_str(",")?;
            }
            write!(f, "{a}")?;
            if b == a + 1 {
                write!(f, ",{b}")?;
            } else if b > a {
                write!(f, "-{b}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn formats_like_upstream() {
        let cases: &[(&[i32], &str)] = &[
            (&[], ""),
            (&[0], "0"),
            (&[4, 5], "4,5"),
            (&[1, 3, 4, 5, 7], "1,3-5,7"),
            (&[7, 1, 5, 4, 3], "1,3-5,7"),
            (&[0, 1, 2, 3, 10, 11], "0-3,10,11"),
        ];
        for (ixs, want) in cases {
            assert_eq!(Indexes::from_indexes(ixs.iter().copied()).to_string(), *want, "{ixs:?}");
        }
    }

    #[test]
    fn parse_is_robust_to_garbage_and_clips_to_completions() {
        let cases: &[(&str, i32, &str)] = &[
            ("", 10, ""),
            ("1,3-5,7", 10, "1,3-5,7"),
            ("1,3-5,7", 5, "1,3,4"),
            ("x,2,,3-,-1,5-2,a-b,4", 10, "2,4"),
            ("3-100", 6, "3-5"),
            ("5,1,2-3,2", 10, "1-3,5"),
            ("99999999999,1", 10, "1"),
            ("0-3", 0, ""),
            (" 1 , 2 ", 10, "1,2"),
        ];
        for (s, completions, want) in cases {
            assert_eq!(Indexes::parse(s, *completions).to_string(), *want, "{s:?} completions={completions}");
        }
    }

    #[test]
    fn contains_count_and_first_missing() {
        let ix = Indexes::parse("1,3-5,7", 10);
        assert!(ix.contains(1) && ix.contains(4) && ix.contains(7));
        assert!(!ix.contains(0) && !ix.contains(2) && !ix.contains(6) && !ix.contains(8) && !ix.contains(-1));
        assert_eq!(ix.count(), 5);
        assert_eq!(ix.first_missing(3, 10), vec![0, 2, 6]);
        assert_eq!(ix.first_missing(10, 9), vec![0, 2, 6, 8]);
        assert_eq!(Indexes::new().first_missing(2, 5), vec![0, 1]);
        assert_eq!(ix.overlap_count(&Indexes::parse("0-4", 10)), 3);
    }

    proptest! {
        #[test]
        fn behaves_like_a_set(ixs in proptest::collection::vec(0i32..200, 0..60), probe in 0i32..210) {
            let set: BTreeSet<i32> = ixs.iter().copied().collect();
            let ix = Indexes::from_indexes(ixs.iter().copied());
            prop_assert_eq!(ix.count(), set.len());
            prop_assert_eq!(ix.contains(probe), set.contains(&probe));
            prop_assert_eq!(ix.iter().collect::<Vec<_>>(), set.iter().copied().collect::<Vec<_>>());
            // Round trip through the string form.
            prop_assert_eq!(Indexes::parse(&ix.to_string(), 1000), ix.clone());
            // Intervals are disjoint and non-adjacent.
            for w in ix.intervals().windows(2) {
                prop_assert!(w[0].1 + 1 < w[1].0);
            }
        }

        #[test]
        fn parse_never_panics(s in ".{0,40}", completions in -5i32..1000) {
            let ix = Indexes::parse(&s, completions);
            prop_assert!(ix.iter().all(|i| i >= 0 && i < completions.max(0)));
        }
    }
}
