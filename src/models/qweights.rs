//! Weight matrices kept in llama.cpp's quantized blocks (`Q4_1`, `Q8_0`, ...) and multiplied
//! by our AVX2 kernels (`Q4_1`, `Q8_0` on the CPU) or candle's quantized matmul (the other
//! types and devices), for `AutoModelForCausalLM::with_quantized_weights`.
//!
//! Decoding on a CPU reads every weight once per token, so the bytes read are the cost: a
//! `Q4_1` matrix is 5 bits a weight against f32's 32. candle's kernel quantizes the activations
//! to 8-bit blocks (`Q8_1` for `Q4_1` weights, `Q8_0` for `Q8_0`) and takes integer dot
//! products, as llama.cpp does; the product has no backward pass, so these matrices are for
//! inference only. This file is a leaf: the dense layer (`layers::linear`) and the weight
//! source (`params`) both hold these, and neither knows where they were read.
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Tensor};

use crate::{Error, Result, kernels};

/// A quantized `nn.Linear` weight `[out, in]` (Hugging Face's layout).
#[derive(Clone, Debug)]
pub(crate) struct QuantizedMatrix(pub Arc<QTensor>);

impl QuantizedMatrix {
    /// `(out, in)`.
    pub fn dims(&self) -> Result<(usize, usize)> {
        Ok(self.0.shape().dims2()?)
    }

    /// `x [.., in]` to `[.., out]` through our `Q4_1` / `Q8_0` kernels or candle's quantized
    /// matmul, in `x`'s dtype (f32 or bf16; the kernels work in f32 either way).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        type Kernel = fn(&Tensor, &[u8], usize) -> candle_core::Result<Tensor>;
        let ours: Option<Kernel> = match self.0.dtype() {
            // candle's Q4_1 product is a scalar loop on x86: ours is llama.cpp's, vectorised
            GgmlDType::Q4_1 => Some(kernels::q4_1_linear),
            // candle's Q8_0 product converts each block's f16 scales out of line: ours with F16C
            GgmlDType::Q8_0 => Some(kernels::q8_0_linear),
            _ => None,
        };
        if let Some(linear) = ours.filter(|_| x.device().is_cpu()) {
            let (n, _) = self.dims()?;
            let bytes = self.0.data()?;
            let y = linear(&x.to_dtype(DType::F32)?, &bytes, n)?;
            return Ok(y.to_dtype(dtype)?);
        }
        let x = match dtype {
            DType::F32 | DType::BF16 | DType::F16 => x.contiguous()?,
            _ => x.to_dtype(DType::F32)?.contiguous()?,
        };
        let dims = x.dims().to_vec();
        // candle's CPU kernel takes any rank from 2 up; a vector becomes one row
        let y = if dims.len() < 2 {
            x.unsqueeze(0)?
                .apply_op1_no_bwd(self.0.as_ref())?
                .squeeze(0)?
        } else {
            x.apply_op1_no_bwd(self.0.as_ref())?
        };
        Ok(if y.dtype() == dtype {
            y
        } else {
            y.to_dtype(dtype)?
        })
    }
}

/// The quantized matrices of a model by Hugging Face weight name
/// (`model.layers.0.self_attn.q_proj.weight`, `lm_head.weight`), and the file they came from.
#[derive(Debug)]
pub(crate) struct QuantizedWeights {
    pub tensors: HashMap<String, QuantizedMatrix>,
    pub source: PathBuf,
}

impl QuantizedWeights {
    /// The matrix named `name`, checked to be `[d_out, d_in]`.
    pub fn matrix(&self, name: &str, d_in: usize, d_out: usize) -> Result<Option<QuantizedMatrix>> {
        let Some(m) = self.tensors.get(name) else {
            return Ok(None);
        };
        let (o, i) = m.dims()?;
        if (o, i) != (d_out, d_in) {
            return Err(Error::WeightShape {
                path: self.source.clone(),
                name: name.to_string(),
                expected: vec![d_out, d_in],
                found: vec![o, i],
            });
        }
        Ok(Some(m.clone()))
    }
}
