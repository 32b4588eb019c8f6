//! Fingerprint passes: the fingerprints of the searcher's class atoms
//! spread over buckets, eight a pass, and each pass's tables.

use crate::guard::ascii::{sequence_probability, Ascii};
use crate::guard::vector::{FingerprintTables, FINGERPRINT};

/// Class-sequence atoms found many at a time, the way Teddy finds
/// literals: four consecutive classes of each atom (its fingerprint, the
/// rarest four) set a bucket bit in nibble tables per position, and one
/// pass of shuffles over the text, 32 positions a step, leaves the
/// positions where some bucket's classes may line up. Those are checked
/// against exact byte tables, then class by class. A class stands for the
/// bytes its low and high nibbles allow (`[wy]` and `[cC]` are exact, a
/// scattered class a little wider), and a bucket holding two fingerprints
/// takes their union, so the checks keep results exact. Shorter atoms take
/// any byte past their end.
#[derive(Debug)]
pub struct Pass {
    /// Per fingerprint position: bucket bits by byte and by nibble.
    pub tables: FingerprintTables,
    /// The atoms of each bucket bit.
    pub buckets: Vec<Vec<usize>>,
}

/// Buckets per [`Pass`] (bits of a byte).
const BUCKETS: usize = 8;

/// Fingerprints a bucket holds on average when there are more than a
/// pass's buckets (it sets how many passes there are).
const SHARED: usize = 3;

/// Groups of fingerprints the pairwise bucket merging starts from at most.
const GREEDY_GROUPS: usize = 64;

impl Pass {
    /// A pass over the atoms of `buckets` (their fingerprints' classes).
    fn new(buckets: Vec<Vec<usize>>, fingerprints: &[[Ascii; FINGERPRINT]]) -> Pass {
        let mut pass = Pass {
            tables: FingerprintTables {
                lo: [[0; 32]; FINGERPRINT],
                hi: [[0; 32]; FINGERPRINT],
                exact: [[0; 256]; FINGERPRINT],
            },
            buckets,
        };
        for (bit, atoms) in pass.buckets.iter().enumerate() {
            for (k, class) in atoms
                .iter()
                .flat_map(|&a| fingerprints[a].iter().enumerate())
            {
                let all = class.0 == Ascii::ALL.0;
                for b in 0..=255u8 {
                    if all || (b < 128 && class.contains(b)) {
                        pass.tables.exact[k][usize::from(b)] |= 1 << bit;
                        pass.tables.lo[k][usize::from(b & 15)] |= 1 << bit;
                        pass.tables.lo[k][usize::from(b & 15) + 16] |= 1 << bit;
                        pass.tables.hi[k][usize::from(b >> 4)] |= 1 << bit;
                        pass.tables.hi[k][usize::from(b >> 4) + 16] |= 1 << bit;
                    }
                }
            }
        }
        pass
    }
}

/// The passes over `fingerprints` (one per class atom, by index): atoms
/// with the same fingerprint share a bucket; eight buckets a pass.
pub fn passes(fingerprints: &[[Ascii; FINGERPRINT]]) -> Vec<Pass> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, fp) in fingerprints.iter().enumerate() {
        match groups.iter_mut().find(|b| fingerprints[b[0]] == *fp) {
            Some(b) => b.push(i),
            None => groups.push(vec![i]),
        }
    }
    // Three fingerprints a bucket on average when there are more than a
    // pass holds: the pairs whose tables widen least merge first (a bucket
    // takes the union of its fingerprints' classes at each position,
    // so `emp-` with `earn` would take `eart` too).
    let n_passes = if groups.len() <= BUCKETS {
        1
    } else {
        groups.len().div_ceil(BUCKETS * SHARED)
    };
    let n_buckets = (BUCKETS * n_passes).min(groups.len());
    // Beyond a few dozen, alike ones (sorted) are grouped first, so the
    // pairwise merging below stays quick when a policy loads.
    if groups.len() > GREEDY_GROUPS {
        groups.sort_by_key(|g| fingerprints[g[0]].map(|c| c.0));
        let n = groups.len();
        groups = (0..GREEDY_GROUPS)
            .map(|k| groups[k * n / GREEDY_GROUPS..(k + 1) * n / GREEDY_GROUPS].concat())
            .collect();
    }
    let hull = |g: &[usize]| -> [Ascii; FINGERPRINT] {
        std::array::from_fn(|k| {
            g.iter()
                .fold(Ascii::default(), |a, &m| a.union(fingerprints[m][k]))
        })
    };
    let mut hulls: Vec<[Ascii; FINGERPRINT]> = groups.iter().map(|g| hull(g)).collect();
    let odds = |h: &[Ascii; FINGERPRINT]| -> f64 { sequence_probability(h) };
    while groups.len() > n_buckets {
        let mut best: Option<(f64, usize, usize)> = None;
        for i in 0..groups.len() {
            for j in i + 1..groups.len() {
                let merged: [Ascii; FINGERPRINT] =
                    std::array::from_fn(|k| hulls[i][k].union(hulls[j][k]));
                let cost = odds(&merged) - odds(&hulls[i]) - odds(&hulls[j]);
                if best.is_none_or(|(c, _, _)| cost < c) {
                    best = Some((cost, i, j));
                }
            }
        }
        let (_, i, j) = best.expect("two groups at least");
        let g = groups.swap_remove(j);
        let h = hulls.swap_remove(j);
        groups[i].extend(g);
        hulls[i] = std::array::from_fn(|k| hulls[i][k].union(h[k]));
    }
    groups
        .chunks(BUCKETS)
        .map(|group| Pass::new(group.to_vec(), fingerprints))
        .collect()
}
