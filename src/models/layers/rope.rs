//! Rotary position embeddings (RoPE) as transformers' `LlamaRotaryEmbedding` computes them: the
//! inverse frequencies `1 / theta^(2i / head_dim)` (rescaled by `linear` or `llama3` scaling),
//! and per token the angles `position * inv_freq`, whose cosines and sines
//! [`kernels::rope`](crate::kernels::rope) turns the queries and keys by. Positions are per row,
//! so a left-padded row can start counting at its first real token (generation passes them).
use candle_core::{DType, Device, Tensor};

use crate::{Error, Result};

/// How the inverse frequencies are rescaled for a longer context (`rope_scaling.rope_type`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum RopeScaling {
    /// `default`: the original frequencies.
    None,
    /// `linear`: every frequency divided by `factor` (positions interpolated).
    Linear { factor: f64 },
    /// `llama3` (Llama 3.1): long wavelengths divided by `factor`, short ones kept, and a smooth
    /// blend between, the bands set by `low_freq_factor`, `high_freq_factor` and the
    /// pretraining context `original_max_position_embeddings`.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
}

/// The inverse frequencies of one head size; `cos_sin` gives the angles of any positions.
#[derive(Clone)]
pub(crate) struct Rope {
    /// `[head_dim / 2]` f32, rounded from f64 (transformers computes them in f32; they agree to
    /// an ulp).
    inv_freq: Tensor,
}

impl Rope {
    pub fn new(head_dim: usize, theta: f64, scaling: RopeScaling, device: &Device) -> Result<Self> {
        let half = head_dim / 2;
        let base: Vec<f64> = (0..half)
            .map(|i| 1.0 / theta.powf((2 * i) as f64 / head_dim as f64))
            .collect();
        let scaled: Vec<f32> = base.iter().map(|&f| scale(f, scaling) as f32).collect();
        Ok(Self {
            inv_freq: Tensor::from_vec(scaled, half, device)?,
        })
    }

    /// `cos` and `sin` `[b, t, head_dim / 2]` in `dtype` for integer `positions [b, t]` (or, when
    /// `None`, `past..past + t` for every row, as transformers counts without position ids).
    pub fn cos_sin(
        &self,
        positions: Option<&Tensor>,
        (b, t): (usize, usize),
        past: usize,
        dtype: DType,
    ) -> Result<(Tensor, Tensor)> {
        let dev = self.inv_freq.device();
        let pos = match positions {
            Some(p) => {
                if p.dims() != [b, t] {
                    return Err(Error::InvalidArgument(format!(
                        "position_ids has shape {:?}, expected [{b}, {t}] like input_ids",
                        p.dims()
                    )));
                }
                if !p.dtype().is_int() {
                    return Err(Error::InvalidArgument(format!(
                        "position_ids must be integers (u32 or i64), got {:?}",
                        p.dtype()
                    )));
                }
                p.to_device(dev)?.to_dtype(DType::F32)?
            }
            None => Tensor::arange(past as u32, (past + t) as u32, dev)?
                .to_dtype(DType::F32)?
                .reshape((1, t))?
                .broadcast_as((b, t))?,
        };
        let freqs = pos
            .unsqueeze(2)?
            .broadcast_mul(&self.inv_freq.reshape((1, 1, ()))?)?;
        Ok((freqs.cos()?.to_dtype(dtype)?, freqs.sin()?.to_dtype(dtype)?))
    }
}

/// One inverse frequency under `scaling` (transformers' `_compute_linear_scaling_rope_parameters`
/// and `_compute_llama3_parameters`).
fn scale(inv_freq: f64, scaling: RopeScaling) -> f64 {
    match scaling {
        RopeScaling::None => inv_freq,
        RopeScaling::Linear { factor } => inv_freq / factor,
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings: old,
        } => {
            let low_freq_wavelen = old / low_freq_factor;
            let high_freq_wavelen = old / high_freq_factor;
            let wavelen = 2.0 * std::f64::consts::PI / inv_freq;
            if wavelen < high_freq_wavelen {
                inv_freq
            } else if wavelen > low_freq_wavelen {
                inv_freq / factor
            } else {
                let smooth =
                    (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                (1.0 - smooth) * inv_freq / factor + smooth * inv_freq
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama3_keeps_high_and_divides_low_frequencies() {
        let s = RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 64.0,
        };
        // wavelength 2π < 16: kept; wavelength 2π·100 > 64: divided by the factor
        assert_eq!(scale(1.0, s), 1.0);
        assert!((scale(0.01, s) - 0.01 / 8.0).abs() < 1e-15);
        // in between (wavelength 32, smooth 1/3): a blend
        let f = 2.0 * std::f64::consts::PI / 32.0;
        let want = (2.0 / 3.0) * f / 8.0 + f / 3.0;
        assert!((scale(f, s) - want).abs() < 1e-12);
    }

    #[test]
    fn cos_sin_follow_the_positions_of_each_row() {
        let rope = Rope::new(4, 10000.0, RopeScaling::None, &Device::Cpu).unwrap();
        let pos = Tensor::new(&[[0u32, 1], [0, 0]], &Device::Cpu).unwrap();
        let (cos, sin) = rope.cos_sin(Some(&pos), (2, 2), 0, DType::F32).unwrap();
        assert_eq!(cos.dims(), &[2, 2, 2]);
        let s: Vec<Vec<Vec<f32>>> = sin.to_vec3().unwrap();
        assert!((s[0][1][0] - 1f32.sin()).abs() < 1e-6);
        assert!((s[0][1][1] - 0.01f32.sin()).abs() < 1e-6);
        assert_eq!(s[1][1], vec![0.0, 0.0]);
        let err = rope
            .cos_sin(Some(&pos), (2, 3), 0, DType::F32)
            .unwrap_err()
            .to_string();
        assert!(err.contains("position_ids"), "{err}");
    }
}
