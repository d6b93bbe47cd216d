//! Thinning a long series for drawing without changing its look: per pixel column (bucket of
//! equal step width) keep the lowest and the highest point, in step order, plus the first and
//! last points. A 100,000-step loss drawn 720 px wide becomes at most 2 × 720 + 2 points, and
//! every spike and dip still reaches the height it had, which an average or a stride would hide.

/// Min/max per bucket: `buckets` equal slices of the x range; a series of at most
/// `2 × buckets` points is returned unchanged. Non-finite points are dropped. The result has at
/// most `2 × buckets + 2` points, in x order.
pub fn downsample_min_max(points: &[(f64, f64)], buckets: usize) -> Vec<(f64, f64)> {
    let pts: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let buckets = buckets.max(1);
    if pts.len() <= 2 * buckets {
        return pts;
    }
    let (x0, x1) = pts
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.0), b.max(p.0))
        });
    let span = (x1 - x0).max(f64::MIN_POSITIVE);
    let bucket_of = |x: f64| (((x - x0) / span * buckets as f64) as usize).min(buckets - 1);
    // Per bucket: index of its min and max point.
    let mut lo: Vec<Option<usize>> = vec![None; buckets];
    let mut hi: Vec<Option<usize>> = vec![None; buckets];
    for (i, p) in pts.iter().enumerate() {
        let b = bucket_of(p.0);
        if lo[b].is_none_or(|j| p.1 < pts[j].1) {
            lo[b] = Some(i);
        }
        if hi[b].is_none_or(|j| p.1 > pts[j].1) {
            hi[b] = Some(i);
        }
    }
    let mut keep: Vec<usize> = Vec::with_capacity(2 * buckets + 2);
    keep.push(0);
    for b in 0..buckets {
        keep.extend(lo[b]);
        keep.extend(hi[b]);
    }
    keep.push(pts.len() - 1);
    keep.sort_unstable();
    keep.dedup();
    keep.into_iter().map(|i| pts[i]).collect()
}

/// Exponential moving average as TensorBoard smooths: `weight` 0 draws the raw series, 0.9
/// averages over about ten points; debiased so the first points are not pulled towards zero.
pub fn ema(points: &[(f64, f64)], weight: f64) -> Vec<(f64, f64)> {
    let w = if weight.is_finite() {
        weight.clamp(0.0, 0.999)
    } else {
        0.0
    };
    let mut last = 0.0;
    let mut n = 0i32;
    points
        .iter()
        .filter(|p| p.1.is_finite())
        .map(|&(x, y)| {
            last = last * w + (1.0 - w) * y;
            n += 1;
            let debias = 1.0 - w.powi(n);
            (x, if debias > 0.0 { last / debias } else { y })
        })
        .collect()
}
