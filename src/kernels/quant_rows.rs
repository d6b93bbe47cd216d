//! The loop the quantized products (`Q4_1`, `Q8_0`) share: weight rows split over the pool,
//! each weight row dotted with the activation rows in groups of [`ROWS`], so a prompt's rows
//! reuse each unpacked weight block and decoding's single row keeps two blocks in flight.
use super::cpu::{OutPtr, par_for};

/// Activation rows per group.
pub(super) const ROWS: usize = 4;

/// `out [m, n]`, element `(i, j)` the dot product of weight row `j` (bytes
/// `j · row_bytes..`) with activation row `i`: `row(i)` cuts activation row `i`'s quantized
/// slices (once per product, not per weight row), `dot(w, rows, out)` fills `out[t]` for the
/// (at most [`ROWS`]) `rows`.
pub(super) fn by_row_groups<'a, R: Copy + Sync + 'a>(
    (m, n, k): (usize, usize, usize),
    w: &[u8],
    row_bytes: usize,
    row: impl Fn(usize) -> R,
    dot: impl Fn(&[u8], &[R], &mut [f32]) + Sync,
) -> Vec<f32> {
    let mut out = vec![0f32; m * n];
    let ptr = OutPtr(out.as_mut_ptr());
    let groups: Vec<(usize, usize, [R; ROWS])> = (0..m)
        .step_by(ROWS)
        .map(|i0| {
            let r = ROWS.min(m - i0);
            (i0, r, std::array::from_fn(|t| row(i0 + t.min(r - 1))))
        })
        .collect();
    par_for(n, m * n * k, |rows| {
        for j in rows {
            let wr = &w[j * row_bytes..(j + 1) * row_bytes];
            for (i0, r, xs) in &groups {
                let mut sums = [0f32; ROWS];
                dot(wr, &xs[..*r], &mut sums[..*r]);
                for (t, v) in sums[..*r].iter().enumerate() {
                    // SAFETY: element (i0 + t, j) is inside `out`, and only the chunk holding
                    // row j of the weights writes column j.
                    unsafe { *ptr.ptr().add((i0 + t) * n + j) = *v };
                }
            }
        }
    });
    out
}
