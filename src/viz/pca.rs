//! Principal component analysis, small and exact enough to compare with scikit-learn: centre the
//! data, then subspace iteration on the covariance `XᵀX/(n-1)` (applied as `Xᵀ(Xv)`, so a
//! 768-wide embedding never builds a 768 × 768 matrix) with a Rayleigh–Ritz step solved by
//! Jacobi rotations, until the leading eigenvalues stop moving.
use candle_core::{DType, Device, Tensor};

use crate::{Error, Result};

/// A fitted projection onto the leading principal components.
#[derive(Clone, Debug, PartialEq)]
pub struct Pca {
    /// Mean of each input dimension (subtracted before projecting).
    pub mean: Vec<f64>,
    /// `k` unit vectors of length `d`, by falling variance. Sign convention: the entry of largest
    /// magnitude of each component is positive.
    pub components: Vec<Vec<f64>>,
    /// Variance along each component (scikit-learn's `explained_variance_`, divisor `n - 1`).
    pub explained_variance: Vec<f64>,
    /// Share of the total variance along each component.
    pub explained_variance_ratio: Vec<f64>,
}

/// Rows of a `[n, d]` tensor as `f32` vectors.
pub fn tensor_rows(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    match t.dims() {
        [_, _] => Ok(t
            .to_dtype(DType::F32)?
            .to_device(&Device::Cpu)?
            .to_vec2::<f32>()?),
        d => Err(Error::InvalidArgument(format!(
            "embeddings must be a [n, d] tensor (one row per item), got shape {d:?}"
        ))),
    }
}

impl Pca {
    /// Fits `k` components to the rows of `data` (`n` rows of equal length `d`).
    pub fn fit(data: &[Vec<f32>], k: usize) -> Result<Self> {
        let n = data.len();
        if n < 2 {
            return Err(Error::InvalidArgument(format!(
                "PCA needs at least 2 rows, got {n}"
            )));
        }
        let d = data[0].len();
        if let Some((i, r)) = data.iter().enumerate().find(|(_, r)| r.len() != d) {
            return Err(Error::InvalidArgument(format!(
                "row {i} has {} values but row 0 has {d}; every row needs the same length",
                r.len()
            )));
        }
        if d == 0 || k == 0 || k > d.min(n) {
            return Err(Error::InvalidArgument(format!(
                "cannot fit {k} components to {n} rows of {d} values; ask for 1..={}",
                d.min(n)
            )));
        }
        if data.iter().flatten().any(|v| !v.is_finite()) {
            return Err(Error::InvalidArgument(
                "the data holds NaN or infinite values".into(),
            ));
        }
        let mut mean = vec![0.0f64; d];
        for r in data {
            for (m, &v) in mean.iter_mut().zip(r) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let x: Vec<Vec<f64>> = data
            .iter()
            .map(|r| r.iter().zip(&mean).map(|(&v, m)| v as f64 - m).collect())
            .collect();
        let total: f64 = x.iter().flatten().map(|v| v * v).sum::<f64>() / (n - 1) as f64;
        // C v = Xᵀ (X v) / (n - 1)
        let cov = |v: &[f64]| -> Vec<f64> {
            let mut out = vec![0.0; d];
            for row in &x {
                let s: f64 = row.iter().zip(v).map(|(a, b)| a * b).sum();
                for (o, a) in out.iter_mut().zip(row) {
                    *o += a * s;
                }
            }
            out.iter_mut().for_each(|o| *o /= (n - 1) as f64);
            out
        };
        let p = (k + 8).min(d).min(n);
        // Deterministic start: a fixed pseudo-random basis.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut q: Vec<Vec<f64>> = (0..p)
            .map(|_| {
                (0..d)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
                    })
                    .collect()
            })
            .collect();
        orthonormalise(&mut q);
        let mut prev: Vec<f64> = vec![f64::NAN; k];
        let mut result: Option<(Vec<f64>, Vec<Vec<f64>>)> = None;
        for _ in 0..3000 {
            let z: Vec<Vec<f64>> = q.iter().map(|v| cov(v)).collect();
            // Rayleigh–Ritz: T = Qᵀ C Q.
            let t: Vec<Vec<f64>> = q
                .iter()
                .map(|qi| z.iter().map(|zj| dot(qi, zj)).collect())
                .collect();
            let (vals, vecs) = jacobi_eigen(t);
            let ritz: Vec<Vec<f64>> = (0..k)
                .map(|c| {
                    let mut v = vec![0.0; d];
                    for (j, qj) in q.iter().enumerate() {
                        let w = vecs[j][c];
                        v.iter_mut().zip(qj).for_each(|(a, b)| *a += w * b);
                    }
                    v
                })
                .collect();
            let done = vals[..k]
                .iter()
                .zip(&prev)
                .all(|(a, b)| (a - b).abs() <= 1e-15 * total.max(f64::MIN_POSITIVE));
            prev = vals[..k].to_vec();
            result = Some((vals[..k].to_vec(), ritz));
            if done {
                break;
            }
            q = z;
            orthonormalise(&mut q);
        }
        let (vals, mut comps) = result.unwrap_or_default();
        for c in comps.iter_mut() {
            let norm = dot(c, c).sqrt().max(f64::MIN_POSITIVE);
            c.iter_mut().for_each(|v| *v /= norm);
            let big = c
                .iter()
                .copied()
                .fold(0.0f64, |a, b| if b.abs() > a.abs() { b } else { a });
            if big < 0.0 {
                c.iter_mut().for_each(|v| *v = -*v);
            }
        }
        let vals: Vec<f64> = vals.into_iter().map(|v| v.max(0.0)).collect();
        Ok(Pca {
            mean,
            components: comps,
            explained_variance_ratio: vals
                .iter()
                .map(|v| if total > 0.0 { v / total } else { 0.0 })
                .collect(),
            explained_variance: vals,
        })
    }

    /// Fits `k` components to the rows of a `[n, d]` tensor.
    pub fn fit_tensor(data: &Tensor, k: usize) -> Result<Self> {
        Self::fit(&tensor_rows(data)?, k)
    }

    /// Coordinates of each row on the components (`[n][k]`).
    pub fn transform(&self, data: &[Vec<f32>]) -> Result<Vec<Vec<f64>>> {
        let d = self.mean.len();
        data.iter()
            .enumerate()
            .map(|(i, r)| {
                if r.len() != d {
                    return Err(Error::InvalidArgument(format!(
                        "row {i} has {} values but the PCA was fitted on {d}",
                        r.len()
                    )));
                }
                let c: Vec<f64> = r
                    .iter()
                    .zip(&self.mean)
                    .map(|(&v, m)| v as f64 - m)
                    .collect();
                Ok(self.components.iter().map(|p| dot(p, &c)).collect())
            })
            .collect()
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Modified Gram–Schmidt (twice, for stability); a vector that vanishes is replaced by a unit
/// vector so the basis keeps its size.
fn orthonormalise(q: &mut [Vec<f64>]) {
    for _ in 0..2 {
        for i in 0..q.len() {
            for j in 0..i {
                let (a, b) = q.split_at_mut(i);
                let r = dot(&a[j], &b[0]);
                b[0].iter_mut().zip(&a[j]).for_each(|(x, y)| *x -= r * y);
            }
            let norm = dot(&q[i], &q[i]).sqrt();
            if norm > 1e-300 {
                q[i].iter_mut().for_each(|x| *x /= norm);
            } else {
                let len = q[i].len();
                q[i] = (0..len)
                    .map(|t| if t == i % len { 1.0 } else { 0.0 })
                    .collect();
            }
        }
    }
}

/// Eigenvalues (descending) and eigenvectors (columns of the returned matrix) of a small
/// symmetric matrix, by cyclic Jacobi rotations.
#[allow(clippy::needless_range_loop)]
fn jacobi_eigen(mut a: Vec<Vec<f64>>) -> (Vec<f64>, Vec<Vec<f64>>) {
    let n = a.len();
    let mut v: Vec<Vec<f64>> = (0..n)
        .map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
        .collect();
    for _ in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        let diag: f64 = (0..n).map(|i| a[i][i] * a[i][i]).sum();
        if off <= 1e-30 * diag.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                if a[p][q].abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k][p], a[k][q]);
                    a[k][p] = c * akp - s * akq;
                    a[k][q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p][k], a[q][k]);
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
                for row in v.iter_mut() {
                    let (vp, vq) = (row[p], row[q]);
                    row[p] = c * vp - s * vq;
                    row[q] = s * vp + c * vq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| a[j][j].total_cmp(&a[i][i]));
    let vals = order.iter().map(|&i| a[i][i]).collect();
    let vecs = (0..n)
        .map(|r| order.iter().map(|&c| v[r][c]).collect())
        .collect();
    (vals, vecs)
}
