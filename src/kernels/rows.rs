//! Rows gathered by index, with backward passes that write each gradient row once:
//! - `pack` takes the real tokens of a padded `[b, t, c]` into `[1, n, c]`, `unpack` lays
//!   `[1, n, c]` out as `[b, t, c]` with zero rows at the padding; the two are each other's
//!   transpose, so each one's backward pass is the other one;
//! - `embedding` looks rows of a table up by token id; its backward pass zeroes the table's
//!   gradient on the pool and adds each looked-up row's gradient into it.
//!
//! candle's `index_select` backward is instead a zeroed table copied once more by a serial
//! `index_add`: for a 30,000-row vocabulary, two passes over 47 MB on one core per step.
use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, Device, Layout, Result, Shape, Tensor, bail};

use super::cpu::{OutPtr, par_for, slice, zeros};

/// Which rows of a padded `[b, t]` batch are real.
pub struct RowMap {
    /// The flat padded index `row * t + position` of each packed row, in order.
    real: Vec<u32>,
    /// For each flat padded index, its packed row, or `u32::MAX` for padding.
    slot: Vec<u32>,
    b: usize,
    t: usize,
}

impl RowMap {
    /// The map of `real` (flat padded indices, increasing) in a `[b, t]` batch; an error if one
    /// lies outside it or repeats.
    pub fn new(real: Vec<u32>, (b, t): (usize, usize)) -> Result<Self> {
        let mut slot = vec![u32::MAX; b * t];
        for (i, &p) in real.iter().enumerate() {
            match slot.get_mut(p as usize) {
                Some(s) if *s == u32::MAX => *s = i as u32,
                _ => bail!("row map: padded index {p} repeats or lies outside [{b}, {t}]"),
            }
        }
        Ok(Self { real, slot, b, t })
    }

    /// How many rows are real.
    pub fn len(&self) -> usize {
        self.real.len()
    }

    pub fn is_empty(&self) -> bool {
        self.real.is_empty()
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Direction {
    Pack,
    Unpack,
}

#[derive(Clone)]
struct Rows {
    map: Arc<RowMap>,
    dir: Direction,
}

impl Rows {
    /// Output row `r`'s source row, or `None` for a zero row.
    fn source(&self, r: usize) -> Option<usize> {
        match self.dir {
            Direction::Pack => Some(self.map.real[r] as usize),
            Direction::Unpack => {
                let s = self.map.slot[r];
                (s != u32::MAX).then_some(s as usize)
            }
        }
    }

    fn rows(&self) -> (usize, usize) {
        let padded = self.map.b * self.map.t;
        match self.dir {
            Direction::Pack => (padded, self.map.len()),
            Direction::Unpack => (self.map.len(), padded),
        }
    }

    fn other(&self) -> Self {
        let dir = match self.dir {
            Direction::Pack => Direction::Unpack,
            Direction::Unpack => Direction::Pack,
        };
        Self {
            map: self.map.clone(),
            dir,
        }
    }
}

impl CustomOp1 for Rows {
    fn name(&self) -> &'static str {
        "massivetext-pack-rows"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l, "pack rows")?;
        let (rows_in, rows_out) = self.rows();
        let c = l.dims().last().copied().unwrap_or(1);
        if x.len() != rows_in * c {
            bail!(
                "pack rows: expected {rows_in} rows of {c}, got shape {:?}",
                l.dims()
            );
        }
        let out = gather(x, c, rows_out, |r| self.source(r));
        let shape = match self.dir {
            Direction::Pack => Shape::from((1, rows_out, c)),
            Direction::Unpack => Shape::from((self.map.b, self.map.t, c)),
        };
        Ok((CpuStorage::F32(out), shape))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(apply(&self.other(), dy)?))
    }
}

fn apply(op: &Rows, x: &Tensor) -> Result<Tensor> {
    if super::use_fused(x) {
        return x.contiguous()?.apply_op1(op.clone());
    }
    // composed: any device and dtype
    let c = x.dim(candle_core::D::Minus1)?;
    let dev = x.device();
    let (b, t) = (op.map.b, op.map.t);
    match op.dir {
        Direction::Pack => {
            let idx = Tensor::new(op.map.real.as_slice(), dev)?;
            x.reshape((b * t, c))?.index_select(&idx, 0)?.unsqueeze(0)
        }
        Direction::Unpack => {
            let n = op.map.len() as u32;
            let idx: Vec<u32> = op.map.slot.iter().map(|&s| s.min(n)).collect();
            let zero = Tensor::zeros((1, c), x.dtype(), dev)?;
            let rows = Tensor::cat(&[&x.reshape((op.map.len(), c))?, &zero], 0)?;
            rows.index_select(&Tensor::new(idx, dev)?, 0)?
                .reshape((b, t, c))
        }
    }
}

/// `x [b, t, c]` → `[1, n, c]`: the real rows of `map`, in order.
pub fn pack_rows(x: &Tensor, map: &Arc<RowMap>) -> Result<Tensor> {
    let op = Rows {
        map: map.clone(),
        dir: Direction::Pack,
    };
    apply(&op, x)
}

/// `x [1, n, c]` → `[b, t, c]`: each packed row at its place in `map`, zeros at the padding.
pub fn unpack_rows(x: &Tensor, map: &Arc<RowMap>) -> Result<Tensor> {
    let op = Rows {
        map: map.clone(),
        dir: Direction::Unpack,
    };
    apply(&op, x)
}

/// Fills `rows_out` rows of `c` values on the pool, row `r` copied from `x`'s row `source(r)`
/// or zero.
fn gather(
    x: &[f32],
    c: usize,
    rows_out: usize,
    source: impl Fn(usize) -> Option<usize> + Sync,
) -> Vec<f32> {
    let mut out: Vec<f32> = Vec::with_capacity(rows_out * c);
    let ptr = OutPtr(out.as_mut_ptr());
    par_for(rows_out, rows_out * c, |range| {
        for r in range {
            // SAFETY: row r lies inside the allocation and only this chunk writes it.
            let dst = unsafe { ptr.slice(r * c, c) };
            match source(r) {
                Some(src) => dst.copy_from_slice(&x[src * c..(src + 1) * c]),
                None => dst.fill(0.0),
            }
        }
    });
    // SAFETY: every row of 0..rows_out was written above.
    unsafe { out.set_len(rows_out * c) };
    out
}

/// Rows of a table `[v, d]` looked up by id.
struct Lookup {
    ids: Vec<u32>,
}

impl CustomOp1 for Lookup {
    fn name(&self) -> &'static str {
        "massivetext-embedding"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let table = slice(s, l, "embedding")?;
        let (v, d) = l.shape().dims2()?;
        if let Some(&bad) = self.ids.iter().find(|&&i| i as usize >= v) {
            bail!("embedding: id {bad} is outside a table of {v} rows");
        }
        let out = gather(table, d, self.ids.len(), |r| Some(self.ids[r] as usize));
        Ok((CpuStorage::F32(out), Shape::from((self.ids.len(), d))))
    }

    fn bwd(&self, table: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let (v, d) = table.dims2()?;
        let dy = dy.contiguous()?;
        let (storage, layout) = dy.storage_and_layout();
        let candle_core::Storage::Cpu(s) = &*storage else {
            bail!("embedding backward: expected a CPU gradient");
        };
        let dy = slice(s, layout, "embedding backward")?;
        let mut grad = zeros(v * d);
        // (`max(1)`: a table of empty rows has an empty gradient, and no chunk of 0)
        for (&id, row) in self.ids.iter().zip(dy.chunks_exact(d.max(1))) {
            let dst = &mut grad[id as usize * d..(id as usize + 1) * d];
            dst.iter_mut().zip(row).for_each(|(g, r)| *g += r);
        }
        Ok(Some(Tensor::from_vec(grad, (v, d), &Device::Cpu)?))
    }
}

/// The rows of `table [v, d]` at `ids` (u32, any shape): `[ids.elem_count(), d]`, as
/// `table.index_select(ids.flatten_all(), 0)`, with the gradient of `table` written once.
pub fn embedding(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    let ids = ids.flatten_all()?;
    if !super::use_fused(table) || ids.dtype() != candle_core::DType::U32 || !ids.device().is_cpu()
    {
        return table.index_select(&ids, 0);
    }
    let op = Lookup {
        ids: ids.to_vec1::<u32>()?,
    };
    table.contiguous()?.apply_op1(op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Packing and unpacking equal `index_select` and its zero-padded inverse, forward and
    /// backward, on the fused and the composed path.
    #[test]
    fn pack_and_unpack_are_transposes_on_both_paths() {
        let dev = Device::Cpu;
        // rows of lengths 3, 1, 2 in [3, 3]; 5 columns
        let map = Arc::new(RowMap::new(vec![0, 1, 2, 3, 6, 7], (3, 3)).unwrap());
        let x = Var::from_tensor(
            &Tensor::arange(0f32, 45., &dev)
                .unwrap()
                .reshape((3, 3, 5))
                .unwrap(),
        )
        .unwrap();
        let w = Tensor::arange(0f32, 30., &dev)
            .unwrap()
            .sin()
            .unwrap()
            .reshape((1, 6, 5))
            .unwrap();
        for fused in [true, false] {
            super::super::with_fused(fused, || {
                let packed = pack_rows(&x, &map).unwrap();
                assert_eq!(packed.dims(), [1, 6, 5]);
                let want: Vec<f32> = [0, 1, 2, 3, 6, 7]
                    .iter()
                    .flat_map(|&r| (r * 5..r * 5 + 5).map(|v| v as f32))
                    .collect();
                assert_eq!(
                    packed.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                    want
                );
                // the gradient of sum(w * pack(x)) is w unpacked, zero at the padding
                let g = (&packed * &w)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                let gx = g.get(&x).unwrap().to_vec3::<f32>().unwrap();
                let wv = w.squeeze(0).unwrap().to_vec2::<f32>().unwrap();
                assert_eq!(gx[0], [wv[0].clone(), wv[1].clone(), wv[2].clone()]);
                assert_eq!(gx[1], [wv[3].clone(), vec![0.; 5], vec![0.; 5]]);
                assert_eq!(gx[2], [wv[4].clone(), wv[5].clone(), vec![0.; 5]]);
                // unpack then pack is the identity, with the identity gradient
                let p = Var::from_tensor(&w).unwrap();
                let back = unpack_rows(&p, &map).unwrap();
                assert_eq!(back.dims(), [3, 3, 5]);
                let b = back.to_vec3::<f32>().unwrap();
                assert_eq!(b[1][1], vec![0.; 5]);
                assert_eq!(b[2][1], wv[5]);
                let round = pack_rows(&back, &map).unwrap();
                assert_eq!(
                    round.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                    w.flatten_all().unwrap().to_vec1::<f32>().unwrap()
                );
                let g = (&round * &w)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                let gp = g.get(&p).unwrap();
                assert_eq!(
                    gp.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                    w.flatten_all().unwrap().to_vec1::<f32>().unwrap()
                );
            });
        }
        assert!(RowMap::new(vec![0, 0], (1, 2)).is_err());
        assert!(RowMap::new(vec![4], (1, 2)).is_err());
    }

    /// The lookup equals `index_select`, forward and backward, with repeated ids (whose
    /// gradients add up) and rows never looked up (zero gradient).
    #[test]
    fn embedding_equals_index_select_with_repeated_ids() {
        let dev = Device::Cpu;
        let table = Var::from_tensor(
            &Tensor::arange(0f32, 24., &dev)
                .unwrap()
                .cos()
                .unwrap()
                .reshape((6, 4))
                .unwrap(),
        )
        .unwrap();
        let ids = Tensor::new(&[[5u32, 1, 1], [0, 5, 1]], &dev).unwrap();
        let w = Tensor::arange(0f32, 24., &dev)
            .unwrap()
            .sin()
            .unwrap()
            .reshape((6, 4))
            .unwrap();
        let ours = embedding(&table, &ids).unwrap();
        let theirs = table.index_select(&ids.flatten_all().unwrap(), 0).unwrap();
        assert_eq!(
            ours.to_vec2::<f32>().unwrap(),
            theirs.to_vec2::<f32>().unwrap()
        );
        let g = (&ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let h = (&theirs * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let (g, h) = (g.get(&table).unwrap(), h.get(&table).unwrap());
        assert_eq!(g.to_vec2::<f32>().unwrap(), h.to_vec2::<f32>().unwrap());
        assert_eq!(g.get(3).unwrap().to_vec1::<f32>().unwrap(), [0.; 4]);
        let err = embedding(&table, &Tensor::new(&[6u32], &dev).unwrap());
        assert!(err.unwrap_err().to_string().contains("id 6"));
        // a table of empty rows: empty rows out, an empty gradient back, no panic
        let empty =
            Var::from_tensor(&Tensor::zeros((6, 0), candle_core::DType::F32, &dev).unwrap())
                .unwrap();
        let rows = embedding(&empty, &ids).unwrap();
        assert_eq!(rows.dims(), [6, 0]);
        let g = rows.sum_all().unwrap().backward().unwrap();
        assert_eq!(g.get(&empty).unwrap().dims(), [6, 0]);
    }
}
