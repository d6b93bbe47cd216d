// The CUDA twins of the fused CPU kernels in src/kernels (f32): the same formulas, one launch per
// op and direction, so that a GPU step runs as few passes over memory as the CPU's. Compiled to
// PTX by build.rs (feature `cuda`); launched from src/kernels/cuda.rs. Row kernels take one block
// per row and reduce with warp shuffles; element-wise kernels use a grid-stride loop.
#include <stdint.h>

#define IGNORE_INDEX (-100)

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffff, v, o));
    return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
__device__ float block_sum(float v) {
    __shared__ float part[32];
    __shared__ float total;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_sum(v);
    if (lane == 0) part[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float w = lane < (blockDim.x >> 5) ? part[lane] : 0.f;
        w = warp_sum(w);
        if (lane == 0) total = w;
    }
    __syncthreads();
    float r = total;
    __syncthreads();
    return r;
}

__device__ float block_max(float v) {
    __shared__ float part[32];
    __shared__ float total;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_max(v);
    if (lane == 0) part[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float w = lane < (blockDim.x >> 5) ? part[lane] : -INFINITY;
        w = warp_max(w);
        if (lane == 0) total = w;
    }
    __syncthreads();
    float r = total;
    __syncthreads();
    return r;
}

// ---- activations: kind 0 = GPT-2's tanh GELU, 1 = erf GELU, 2 = SiLU --------------------------

#define SQRT_2_OVER_PI 0.7978845608f
#define GELU_C 0.044715f

__device__ __forceinline__ float sigmoidf(float x) { return 1.f / (1.f + expf(-x)); }

__device__ __forceinline__ float act_fwd(int kind, float x) {
    if (kind == 0) return x * sigmoidf(2.f * SQRT_2_OVER_PI * (x + GELU_C * x * x * x));
    if (kind == 1) return (float)(0.5 * (double)x * (1.0 + erf((double)x / sqrt(2.0))));
    return x * sigmoidf(x);
}

__device__ __forceinline__ float act_grad(int kind, float x) {
    if (kind == 0) {
        float s = sigmoidf(2.f * SQRT_2_OVER_PI * (x + GELU_C * x * x * x));
        return s + 2.f * x * s * (1.f - s) * SQRT_2_OVER_PI * (1.f + 3.f * GELU_C * x * x);
    }
    if (kind == 1) {
        double xd = x;
        double cdf = 0.5 * (1.0 + erf(xd / sqrt(2.0)));
        double pdf = exp(-0.5 * xd * xd) / sqrt(2.0 * 3.14159265358979323846);
        return (float)(cdf + xd * pdf);
    }
    float s = sigmoidf(x);
    return s * (1.f + x * (1.f - s));
}

extern "C" __global__ void act_fwd_f32(size_t n, int kind, const float *x, float *y) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] = act_fwd(kind, x[i]);
}

extern "C" __global__ void act_bwd_f32(size_t n, int kind, const float *x, const float *g, float *dx) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dx[i] = g[i] * act_grad(kind, x[i]);
}

// ---- LayerNorm over the last dimension (biased variance, as PyTorch) ---------------------------

__device__ void ln_stats(const float *x, int d, float eps, float *mean, float *rstd) {
    float s = 0.f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) s += x[i];
    float m = block_sum(s) / d;
    float q = 0.f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) q += (x[i] - m) * (x[i] - m);
    float var = block_sum(q) / d;
    *mean = m;
    *rstd = rsqrtf(var + eps);
}

extern "C" __global__ void layer_norm_fwd_f32(int d, float eps, const float *x, const float *w,
                                              const float *b, float *y) {
    const float *xr = x + (size_t)blockIdx.x * d;
    float *yr = y + (size_t)blockIdx.x * d;
    float mean, rstd;
    ln_stats(xr, d, eps, &mean, &rstd);
    for (int i = threadIdx.x; i < d; i += blockDim.x) yr[i] = (xr[i] - mean) * rstd * w[i] + b[i];
}

// out[0..n] = dx, out[n..2n] = g * xhat (summed over rows into dw by the caller), as the CPU op.
extern "C" __global__ void layer_norm_bwd_f32(size_t n, int d, float eps, const float *x,
                                              const float *w, const float *g, float *out) {
    size_t base = (size_t)blockIdx.x * d;
    const float *xr = x + base, *gr = g + base;
    float *dx = out + base, *gx = out + n + base;
    float mean, rstd;
    ln_stats(xr, d, eps, &mean, &rstd);
    float m1 = 0.f, m2 = 0.f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float xh = (xr[i] - mean) * rstd, gw = gr[i] * w[i];
        m1 += gw;
        m2 += gw * xh;
        gx[i] = gr[i] * xh;
    }
    m1 = block_sum(m1) / d;
    m2 = block_sum(m2) / d;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float xh = (xr[i] - mean) * rstd;
        dx[i] = rstd * (gr[i] * w[i] - m1 - xh * m2);
    }
}

// ---- RMSNorm over the last dimension (transformers' LlamaRMSNorm) ------------------------------

__device__ float rms_rstd(const float *x, int d, float eps) {
    float q = 0.f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) q += x[i] * x[i];
    return rsqrtf(block_sum(q) / d + eps);
}

extern "C" __global__ void rms_norm_fwd_f32(int d, float eps, const float *x, const float *w, float *y) {
    const float *xr = x + (size_t)blockIdx.x * d;
    float *yr = y + (size_t)blockIdx.x * d;
    float r = rms_rstd(xr, d, eps);
    for (int i = threadIdx.x; i < d; i += blockDim.x) yr[i] = xr[i] * r * w[i];
}

// out[0..n] = dx = rstd (g w - xhat mean(g w xhat)), out[n..2n] = g * xhat (summed over rows into
// dw by the caller), as the CPU op.
extern "C" __global__ void rms_norm_bwd_f32(size_t n, int d, float eps, const float *x,
                                            const float *w, const float *g, float *out) {
    size_t base = (size_t)blockIdx.x * d;
    const float *xr = x + base, *gr = g + base;
    float *dx = out + base, *gx = out + n + base;
    float r = rms_rstd(xr, d, eps);
    float m = 0.f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float xh = xr[i] * r;
        m += gr[i] * w[i] * xh;
        gx[i] = gr[i] * xh;
    }
    m = block_sum(m) / d;
    for (int i = threadIdx.x; i < d; i += blockDim.x) dx[i] = r * (gr[i] * w[i] - xr[i] * r * m);
}

// ---- SwiGLU: silu(gate) * up, element-wise ----------------------------------------------------

extern "C" __global__ void swiglu_fwd_f32(size_t n, const float *gate, const float *up, float *y) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] = gate[i] * sigmoidf(gate[i]) * up[i];
}

// out[0..n] = d gate = dy up silu'(gate), out[n..2n] = d up = dy silu(gate), as the CPU op.
extern "C" __global__ void swiglu_bwd_f32(size_t n, const float *gate, const float *up,
                                          const float *dy, float *out) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float g = gate[i], s = sigmoidf(g);
        out[i] = dy[i] * up[i] * s * (1.f + g * (1.f - s));
        out[n + i] = dy[i] * g * s;
    }
}

// ---- softmax over the last dimension ----------------------------------------------------------

extern "C" __global__ void softmax_fwd_f32(int d, const float *x, float *y) {
    const float *xr = x + (size_t)blockIdx.x * d;
    float *yr = y + (size_t)blockIdx.x * d;
    float m = -INFINITY;
    for (int i = threadIdx.x; i < d; i += blockDim.x) m = fmaxf(m, xr[i]);
    m = block_max(m);
    float s = 0.f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float e = expf(xr[i] - m);
        yr[i] = e;
        s += e;
    }
    float inv = 1.f / block_sum(s);
    for (int i = threadIdx.x; i < d; i += blockDim.x) yr[i] *= inv;
}

extern "C" __global__ void softmax_bwd_f32(int d, const float *y, const float *g, float *dx) {
    size_t base = (size_t)blockIdx.x * d;
    float dot = 0.f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) dot += y[base + i] * g[base + i];
    dot = block_sum(dot);
    for (int i = threadIdx.x; i < d; i += blockDim.x) dx[base + i] = y[base + i] * (g[base + i] - dot);
}

// ---- cross-entropy (mean over the labels that are not IGNORE_INDEX) ---------------------------

// The row's log-sum-exp.
__device__ float row_lse(const float *xr, int v) {
    float m = -INFINITY;
    for (int i = threadIdx.x; i < v; i += blockDim.x) m = fmaxf(m, xr[i]);
    m = block_max(m);
    float s = 0.f;
    for (int i = threadIdx.x; i < v; i += blockDim.x) s += expf(xr[i] - m);
    return m + logf(block_sum(s));
}

// A label outside [0, v) other than IGNORE_INDEX: bad[0] = 1, bad[1] = the label (the caller
// reads them back and reports the error, as the CPU op does).
extern "C" __global__ void cross_entropy_rows_f32(int v, const float *x, const int64_t *t,
                                                  float *per_row, long long *bad) {
    int64_t ti = t[blockIdx.x];
    if (ti == IGNORE_INDEX || ti < 0 || ti >= v) {
        if (threadIdx.x == 0) {
            per_row[blockIdx.x] = 0.f;
            if (ti != IGNORE_INDEX) {
                bad[0] = 1;
                bad[1] = (long long)ti;
            }
        }
        return;
    }
    const float *xr = x + (size_t)blockIdx.x * v;
    float lse = row_lse(xr, v);
    if (threadIdx.x == 0) per_row[blockIdx.x] = lse - xr[ti];
}

// out[0] = sum(per_row) / count (double accumulation, as the CPU op); NaN when every label is
// ignored, as torch's mean gives. One block.
extern "C" __global__ void cross_entropy_mean_f32(int rows, const float *per_row, const int64_t *t,
                                                  float *out) {
    __shared__ double tot[1024];
    __shared__ int cnt[1024];
    double s = 0.0;
    int c = 0;
    for (int r = threadIdx.x; r < rows; r += blockDim.x) {
        s += per_row[r];
        c += t[r] != IGNORE_INDEX;
    }
    tot[threadIdx.x] = s;
    cnt[threadIdx.x] = c;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if (threadIdx.x < k) {
            tot[threadIdx.x] += tot[threadIdx.x + k];
            cnt[threadIdx.x] += cnt[threadIdx.x + k];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) out[0] = (float)(tot[0] / (double)cnt[0]);
}

// count[0] = the number of labels that are not IGNORE_INDEX. One block.
extern "C" __global__ void count_labels_i64(int rows, const int64_t *t, int *count) {
    float c = 0.f;
    for (int r = threadIdx.x; r < rows; r += blockDim.x) c += t[r] != IGNORE_INDEX;
    c = block_sum(c);
    if (threadIdx.x == 0) count[0] = (int)c;
}

// dx = (softmax(x) - onehot(t)) * g / count for the labelled rows, 0 for the ignored ones.
extern "C" __global__ void cross_entropy_bwd_f32(int v, const float *x, const int64_t *t,
                                                 const int *count, const float *g, float *dx) {
    float scale = g[0] / (float)(count[0] > 0 ? count[0] : 1);
    size_t base = (size_t)blockIdx.x * v;
    int64_t ti = t[blockIdx.x];
    if (ti == IGNORE_INDEX) {
        for (int i = threadIdx.x; i < v; i += blockDim.x) dx[base + i] = 0.f;
        return;
    }
    float lse = row_lse(x + base, v);
    for (int i = threadIdx.x; i < v; i += blockDim.x) {
        float p = expf(x[base + i] - lse) * scale;
        dx[base + i] = i == ti ? p - scale : p;
    }
}

// ---- AdamW, torch's single-tensor kernel in its order of f32 operations -----------------------

extern "C" __global__ void adamw_moments_f32(size_t n, float one_minus_beta1, float beta2,
                                             float one_minus_beta2, const float *g, float *mv) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float gi = g[i];
        mv[i] += one_minus_beta1 * (gi - mv[i]);
        mv[n + i] = mv[n + i] * beta2 + one_minus_beta2 * gi * gi;
    }
}

extern "C" __global__ void adamw_weight_f32(size_t n, float step_size, float bias_correction2_sqrt,
                                            float decay_mul, float eps, const float *mv, float *w) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float wi = w[i];
        if (decay_mul != 1.f) wi *= decay_mul;
        float denom = sqrtf(mv[n + i]) / bias_correction2_sqrt + eps;
        w[i] = wi + (-step_size) * mv[i] / denom;
    }
}
