//! CPython's set iteration order, where whisper's output depends on it.

/// The iteration order of `set(values)` in CPython (3.11's set table:
/// hash = the int itself, 9 linear probes then perturbed probing, the
/// table grown 4x when 3/5 full). Used where whisper iterates a set and the
/// order shows in the file.
pub fn python_set_order(values: &[i64]) -> Vec<i64> {
    const LINEAR_PROBES: usize = 9;
    const PERTURB_SHIFT: u32 = 5;
    fn hash(v: i64) -> u64 {
        // CPython's int hash: v mod (2^61 - 1), with -1 mapped to -2.
        let m: i128 = (1i128 << 61) - 1;
        let mut h = (v as i128).rem_euclid(m);
        if v < 0 {
            h -= m;
        }
        let h = if h == -1 { -2 } else { h };
        h as i64 as u64
    }
    fn insert(table: &mut [Option<i64>], v: i64) -> bool {
        let mask = table.len() - 1;
        let h = hash(v);
        let mut perturb = h;
        let mut i = (h as usize) & mask;
        loop {
            let probes = if i + LINEAR_PROBES <= mask {
                LINEAR_PROBES
            } else {
                0
            };
            for slot in &mut table[i..=i + probes] {
                match *slot {
                    None => {
                        *slot = Some(v);
                        return true;
                    }
                    Some(x) if x == v => return false,
                    Some(_) => {}
                }
            }
            perturb >>= PERTURB_SHIFT;
            i = (i
                .wrapping_mul(5)
                .wrapping_add(1)
                .wrapping_add(perturb as usize))
                & mask;
        }
    }
    let mut table: Vec<Option<i64>> = vec![None; 8];
    let mut used = 0usize;
    for &v in values {
        if insert(&mut table, v) {
            used += 1;
            let mask = table.len() - 1;
            if used * 5 >= mask * 3 {
                let min_used = if used > 50_000 { used * 2 } else { used * 4 };
                let mut size = 8;
                while size <= min_used {
                    size <<= 1;
                }
                let old = std::mem::replace(&mut table, vec![None; size]);
                for x in old.into_iter().flatten() {
                    insert(&mut table, x);
                }
            }
        }
    }
    table.into_iter().flatten().collect()
}
