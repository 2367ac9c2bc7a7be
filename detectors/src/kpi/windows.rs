//! The sums the long window tests read, kept as buckets enter the ring.
//!
//! A bucket is judged with every window of [`WINDOWS`] ending with it: the
//! window's total is the bucket plus the newest `length - 1` entries of
//! the ring. Summing those afresh took up to 47 entries per window source,
//! twice a bucket for a grouped KPI (a quarter of replay's instructions:
//! callgrind). The windows up to [`SUMMED_FROM`] are still summed from the
//! ring's newest entries, a few cache lines; for the longer ones,
//! [`WindowSums`] keeps the sum of the ring's newest `length - 1` entries
//! and slides it as an entry enters (the entering one added, the one
//! leaving that window subtracted). The totals of `f32` entries in `f64`
//! are exact for the values a series has (their exponents span far less
//! than the 29 bits between the two mantissas), so sliding gives the same
//! sums as summing afresh; they are still summed afresh once per turn of
//! the ring, so that no rounding could accumulate.
//!
//! The sums are derived from the ring and not saved with the model: a
//! restored model has none ([`WindowSums::valid`] false), and judges from
//! sums computed on the spot until its next bucket enters the ring.

use super::{Entry, Source, SPAN, WINDOWS};

/// The first window (an index into [`WINDOWS`]) read from kept sums; the
/// shorter ones are summed from the ring.
pub(super) const SUMMED_FROM: usize = 6;
/// Windows read from kept sums.
const SUMMED: usize = WINDOWS.len() - SUMMED_FROM;

/// Totals of some ring entries, in f64: value, events, and the expected
/// value and noise variance from the own model and from peers (in that
/// order: an array, so that sliding adds them together). Expected values
/// that are not finite (peers not compared) are summed as 0;
/// [`WindowSums::before`] says how far back they are finite.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Totals([f64; 6]);

impl Totals {
    fn of(e: &Entry) -> Self {
        let (mu, vn) = finite_pair(e, Source::Own);
        let (mu_p, vn_p) = finite_pair(e, Source::Peers);
        Self([f64::from(e.x), f64::from(e.n), mu, vn, mu_p, vn_p])
    }

    /// Value and events.
    #[inline]
    pub fn x_n(&self) -> (f64, f64) {
        (self.0[0], self.0[1])
    }

    /// Expected value and noise variance from `source`.
    #[inline]
    pub fn expected(&self, source: Source) -> (f64, f64) {
        match source {
            Source::Own => (self.0[2], self.0[3]),
            Source::Peers => (self.0[4], self.0[5]),
            // Not summed here (see `TypicalTest`).
            Source::Typical => (f64::NAN, f64::NAN),
        }
    }
}

/// `e`'s expectation from `source` as f64, or (0, 0) when it is not
/// finite.
fn finite_pair(e: &Entry, source: Source) -> (f64, f64) {
    if is_finite(e, source) {
        let (mu, vn) = e.expected(source);
        (f64::from(mu), f64::from(vn))
    } else {
        (0.0, 0.0)
    }
}

fn is_finite(e: &Entry, source: Source) -> bool {
    let (mu, vn) = e.expected(source);
    mu.is_finite() && vn.is_finite()
}

/// Per window of [`WINDOWS`] from [`SUMMED_FROM`], the totals of the
/// ring's newest `length - 1` entries; see the module docs.
#[derive(Debug, Clone, Default)]
pub(super) struct WindowSums {
    /// Whether the sums match the ring (false after a restore).
    pub valid: bool,
    before: [Totals; SUMMED],
    /// Newest entries in a row whose own and peer expectations are finite.
    compared: [u8; 2],
}

/// Derived from the ring: two models with the same ring are equal whatever
/// their sums (a restored model has none until its next bucket).
impl PartialEq for WindowSums {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl WindowSums {
    /// The sums of `ring`, whose next entry goes to `head`, summed afresh.
    pub fn of(ring: &[Entry], head: usize) -> Self {
        let mut sums = Self {
            valid: true,
            ..Self::default()
        };
        let mut running = Totals::default();
        let mut open = [true; 2];
        let mut w = 0;
        for k in 1..ring.len() {
            let e = &ring[(head + ring.len() - k) % ring.len()];
            for (s, source) in [Source::Own, Source::Peers].into_iter().enumerate() {
                open[s] &= is_finite(e, source);
                if open[s] {
                    sums.compared[s] += 1;
                }
            }
            let t = Totals::of(e);
            for (r, v) in running.0.iter_mut().zip(t.0) {
                *r += v;
            }
            if w < SUMMED && WINDOWS[SUMMED_FROM + w] - 1 == k {
                sums.before[w] = running;
                w += 1;
            }
        }
        sums
    }

    /// `e` enters `ring` at `head`, where it is not written yet.
    pub fn slide(&mut self, ring: &[Entry], head: usize, e: &Entry) {
        let entering = Totals::of(e);
        for (w, &k) in WINDOWS[SUMMED_FROM..].iter().enumerate() {
            let leaving = Totals::of(&ring[(head + ring.len() - (k - 1)) % ring.len()]);
            for ((t, v), l) in self.before[w].0.iter_mut().zip(entering.0).zip(leaving.0) {
                *t += v - l;
            }
        }
        for (s, source) in [Source::Own, Source::Peers].into_iter().enumerate() {
            self.compared[s] = if is_finite(e, source) {
                (self.compared[s] + 1).min(SPAN as u8 - 1)
            } else {
                0
            };
        }
    }

    /// The totals of the newest `WINDOWS[SUMMED_FROM + w] - 1` entries, if
    /// their expectations from `source` are all finite.
    #[inline]
    pub fn before(&self, w: usize, source: Source) -> Option<&Totals> {
        let s = usize::from(source == Source::Peers);
        (WINDOWS[SUMMED_FROM + w] - 1 <= usize::from(self.compared[s])).then(|| &self.before[w])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: usize) -> Entry {
        let v = i as f32;
        Entry {
            x: v,
            n: v + 1.0,
            mu: 2.0 * v,
            vn: 3.0 * v,
            // Peers compared only from entry 10 on.
            mu_p: if i >= 10 { v } else { f32::NAN },
            vn_p: if i >= 10 { 0.5 * v } else { f32::NAN },
        }
    }

    /// Pushes `count` entries through sliding sums, as the model does.
    fn pushed(count: usize) -> (Vec<Entry>, usize, WindowSums) {
        let mut ring = vec![Entry::default(); SPAN];
        let mut head = 0;
        let mut sums = WindowSums::of(&ring, head);
        for i in 0..count {
            let e = entry(i);
            sums.slide(&ring, head, &e);
            ring[head] = e;
            head = (head + 1) % SPAN;
        }
        (ring, head, sums)
    }

    #[test]
    fn sliding_sums_equal_the_sums_of_the_newest_entries() {
        for count in [0, 1, 5, 30, 47, 48, 49, 130] {
            let (ring, head, sums) = pushed(count);
            let fresh = WindowSums::of(&ring, head);
            for (w, &k) in WINDOWS[SUMMED_FROM..].iter().enumerate() {
                // The newest k - 1 entries pushed.
                let newest = (count.saturating_sub(k - 1)..count).map(entry);
                let x: f64 = newest.clone().map(|e| f64::from(e.x)).sum();
                let mu: f64 = newest.map(|e| f64::from(e.mu)).sum();
                for s in [&sums, &fresh] {
                    let t = s.before(w, Source::Own).expect("own always finite");
                    assert_eq!(
                        (t.x_n().0, t.expected(Source::Own).0),
                        (x, mu),
                        "{count} {k}"
                    );
                }
            }
        }
    }

    #[test]
    fn peer_windows_reach_back_only_to_the_first_comparison() {
        // Entries 10 to 29 have peers: a window reaches back 20 entries at
        // most, and the longest kept within that is 16 buckets.
        let (ring, head, sums) = pushed(30);
        for s in [&sums, &WindowSums::of(&ring, head)] {
            let longest = (0..SUMMED)
                .filter(|&w| s.before(w, Source::Peers).is_some())
                .map(|w| WINDOWS[SUMMED_FROM + w])
                .max();
            assert_eq!(longest, Some(16));
            let fifteen: f64 = (15..30).map(|i| i as f64).sum();
            let t = s.before(1, Source::Peers).expect("fifteen before");
            assert_eq!(t.expected(Source::Peers), (fifteen, 0.5 * fifteen));
        }
    }

    #[test]
    fn a_restored_model_differs_only_in_sums_that_are_not_saved() {
        let (_, _, sums) = pushed(20);
        assert_eq!(sums, WindowSums::default());
        assert!(!WindowSums::default().valid);
    }
}
