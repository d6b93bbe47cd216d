// Attention on the GPU, flash-attention style (f32; one kernel forward, two backward): the scores
// `q kᵀ · scale + mask`, their softmax and the weighted values never go to global memory.
// The forward pass keeps, per (sequence, head, query), the row's running maximum and the inverse
// of its sum of exponentials; the backward pass recomputes each probability from them.
//
// Layout: queries, keys and values are read through strides (sequence, head, position; the head
// dimension contiguous), so the packed projections `qkv [b, t, 3h]` of GPT-2/BERT and the
// separate `[b, heads, t, hd]` tensors of grouped-query attention take the same kernels; the
// gradients go to one buffer, each at its offset with its own strides (the inputs' for packed
// projections, so that `dqkv` comes out packed). Query head `h` reads key/value head
// `h / (heads / kv_heads)`. The additive mask is `[mb, tq, tk]` with batch stride `mask_b` (0
// when shared by the batch).
//
// Work split: a block of ROWS warps, one query row per warp (one key row in `flash_bwd_dkdv`);
// tiles of TILE keys (queries) go through shared memory, one per lane. Head width ≤ HD_MAX.
//
// Launched from src/kernels/cuda/attention.rs; src/kernels/flash.rs wraps them as candle ops.
#include <stdint.h>

#define ROWS 8
#define TILE 32
#define HD_MAX 128
#define PER_LANE (HD_MAX / 32)
#define FULL 0xffffffffu

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL, v, o));
    return v;
}

// The sizes and strides every kernel takes, in this order.
#define ATTN_PARAMS                                                                        \
    int heads, int kv_heads, int tq, int tk, int hd, float scale,                          \
    const float *q, long long q_b, long long q_h, long long q_t,                           \
    const float *k, long long k_b, long long k_h, long long k_t,                           \
    const float *v, long long v_b, long long v_h, long long v_t,                           \
    const float *mask, long long mask_b, int has_mask

// The dot product of two rows of `hd` values in shared memory.
__device__ __forceinline__ float dot(const float *a, const float *b, int hd) {
    float s = 0.f;
    for (int d = 0; d < hd; ++d) s += a[d] * b[d];
    return s;
}

// The arguments of ATTN_PARAMS, passed on.
#define ATTN_ARGS                                                                          \
    heads, kv_heads, tq, tk, hd, scale, q, q_b, q_h, q_t, k, k_b, k_h, k_t, v, v_b, v_h, v_t, \
        mask, mask_b, has_mask

// A warp's query row `i` of head `hh` of sequence `bi` (blocks of ROWS rows, by sequence and
// head), and where its head's queries, its kv head's keys and values, and its mask row start.
struct QueryRow {
    int lane, w, bh, bi, hh, i;
    bool ok;
    const float *q, *k, *v, *mask;
};

__device__ __forceinline__ QueryRow query_row(ATTN_PARAMS) {
    QueryRow r;
    r.lane = threadIdx.x & 31;
    r.w = threadIdx.x >> 5;
    r.bh = blockIdx.y;
    r.bi = r.bh / heads;
    r.hh = r.bh % heads;
    const int kvh = r.hh / (heads / kv_heads);
    r.i = blockIdx.x * ROWS + r.w;
    r.ok = r.i < tq;
    r.q = q + r.bi * q_b + r.hh * q_h;
    r.k = k + r.bi * k_b + kvh * k_h;
    r.v = v + r.bi * v_b + kvh * v_h;
    r.mask = (has_mask && r.ok) ? mask + r.bi * mask_b + (long long)r.i * tk : nullptr;
    return r;
}

// Rows `first .. first + TILE` of `src` (rows `src_rs` apart) into shared memory `dst` (rows
// `dst_rs` apart), zeros past row `count`; by the whole block.
__device__ __forceinline__ void load_tile(float *dst, int dst_rs, const float *src, long long src_rs,
                                          int first, int count, int hd) {
    for (int e = threadIdx.x; e < TILE * hd; e += blockDim.x) {
        const int r = e / hd, d = e % hd;
        dst[r * dst_rs + d] = first + r < count ? src[(long long)(first + r) * src_rs + d] : 0.f;
    }
}

// Forward: y [b, tq, heads * hd] and stats [2, b * heads * tq] (row maximum, 1 / row sum).
extern "C" __global__ void flash_fwd_f32(ATTN_PARAMS, float *y, float *stats) {
    extern __shared__ float sm[];
    const int pad = hd + 1;
    float *qs = sm;                  // ROWS x hd: this block's query rows
    float *ks = qs + ROWS * hd;      // TILE x pad: a tile of keys (padded: lane j reads row j)
    float *vs = ks + TILE * pad;     // TILE x hd: the tile's values
    const QueryRow r = query_row(ATTN_ARGS);
    const int lane = r.lane, w = r.w, bi = r.bi, hh = r.hh, i = r.i;
    const bool row_ok = r.ok;
    for (int d = lane; d < hd; d += 32) qs[w * hd + d] = row_ok ? r.q[(long long)i * q_t + d] : 0.f;
    float m = -INFINITY, l = 0.f, acc[PER_LANE];
    for (int c = 0; c < PER_LANE; ++c) acc[c] = 0.f;
    for (int j0 = 0; j0 < tk; j0 += TILE) {
        __syncthreads();
        load_tile(ks, pad, r.k, k_t, j0, tk, hd);
        load_tile(vs, hd, r.v, v_t, j0, tk, hd);
        __syncthreads();
        const int j = j0 + lane;
        float s = -INFINITY;
        if (row_ok && j < tk) {
            s = dot(qs + w * hd, ks + lane * pad, hd) * scale;
            if (r.mask) s += r.mask[j];
        }
        const float m_new = fmaxf(m, warp_max(s));
        const float p = (s == -INFINITY) ? 0.f : expf(s - m_new);
        const float alpha = (m == -INFINITY) ? 0.f : expf(m - m_new);
        l = l * alpha + warp_sum(p);
        for (int c = 0; c < PER_LANE; ++c) acc[c] *= alpha;
        for (int jj = 0; jj < TILE; ++jj) {
            const float pj = __shfl_sync(FULL, p, jj);
            for (int c = 0; c < PER_LANE; ++c) {
                const int d = lane + 32 * c;
                if (d < hd) acc[c] += pj * vs[jj * hd + d];
            }
        }
        m = m_new;
    }
    if (!row_ok) return;
    const float inv = 1.f / l;
    float *yp = y + ((long long)bi * tq + i) * heads * hd + hh * hd;
    for (int c = 0; c < PER_LANE; ++c) {
        const int d = lane + 32 * c;
        if (d < hd) yp[d] = acc[c] * inv;
    }
    if (lane == 0) {
        const long long row = (long long)r.bh * tq + i;
        const long long rows = (long long)gridDim.y * tq;
        stats[row] = m;
        stats[rows + row] = inv;
    }
}

// The probability of a score under its row's statistics.
__device__ __forceinline__ float prob(float s, float m, float inv) {
    return s == -INFINITY ? 0.f : expf(s - m) * inv;
}

// Backward, queries: `dd = rowsum(dy ∘ y)` per row, then `dq = scale · Σ_j dS_ij k_j` with
// `dS = P ∘ (dy vᵀ − dd)`. dq is written at `dqkv + dq_off` with strides `dq_*`.
extern "C" __global__ void flash_bwd_dq_f32(ATTN_PARAMS, const float *y, const float *dy,
                                            const float *stats, float *dd, float *dqkv,
                                            long long dq_off, long long dq_b, long long dq_h,
                                            long long dq_t) {
    extern __shared__ float sm[];
    const int pad = hd + 1;
    float *qs = sm;                  // ROWS x hd
    float *dys = qs + ROWS * hd;     // ROWS x hd
    float *ks = dys + ROWS * hd;     // TILE x pad
    float *vs = ks + TILE * pad;     // TILE x pad
    const QueryRow r = query_row(ATTN_ARGS);
    const int lane = r.lane, w = r.w, bi = r.bi, hh = r.hh, i = r.i;
    const bool row_ok = r.ok;
    const long long yrow = ((long long)bi * tq + i) * heads * hd + hh * hd;
    float part = 0.f;
    for (int d = lane; d < hd; d += 32) {
        qs[w * hd + d] = row_ok ? r.q[(long long)i * q_t + d] : 0.f;
        const float g = row_ok ? dy[yrow + d] : 0.f;
        dys[w * hd + d] = g;
        if (row_ok) part += g * y[yrow + d];
    }
    const float di = warp_sum(part);
    const long long row = (long long)r.bh * tq + i, rows = (long long)gridDim.y * tq;
    const float m = row_ok ? stats[row] : 0.f, inv = row_ok ? stats[rows + row] : 0.f;
    if (row_ok && lane == 0) dd[row] = di;
    float acc[PER_LANE];
    for (int c = 0; c < PER_LANE; ++c) acc[c] = 0.f;
    for (int j0 = 0; j0 < tk; j0 += TILE) {
        __syncthreads();
        load_tile(ks, pad, r.k, k_t, j0, tk, hd);
        load_tile(vs, pad, r.v, v_t, j0, tk, hd);
        __syncthreads();
        const int j = j0 + lane;
        float ds = 0.f;
        if (row_ok && j < tk) {
            float s = dot(qs + w * hd, ks + lane * pad, hd) * scale;
            if (r.mask) s += r.mask[j];
            const float p = prob(s, m, inv);
            ds = p * (dot(dys + w * hd, vs + lane * pad, hd) - di);
        }
        for (int jj = 0; jj < TILE; ++jj) {
            const float dsj = __shfl_sync(FULL, ds, jj);
            for (int c = 0; c < PER_LANE; ++c) {
                const int d = lane + 32 * c;
                if (d < hd) acc[c] += dsj * ks[jj * pad + d];
            }
        }
    }
    if (!row_ok) return;
    float *dqp = dqkv + dq_off + bi * dq_b + hh * dq_h + (long long)i * dq_t;
    for (int c = 0; c < PER_LANE; ++c) {
        const int d = lane + 32 * c;
        if (d < hd) dqp[d] = acc[c] * scale;
    }
}

// Backward, keys and values, one key row per warp over every query of every query head that
// reads it: `dv_j = Σ_i P_ij dy_i`, `dk_j = scale · Σ_i dS_ij q_i`. Needs `dd` from
// `flash_bwd_dq_f32`. Written at `dqkv + dk_off` / `dv_off` with strides `dk_*` / `dv_*`.
extern "C" __global__ void flash_bwd_dkdv_f32(ATTN_PARAMS, const float *dy, const float *stats,
                                              const float *dd, float *dqkv, long long dk_off,
                                              long long dk_b, long long dk_h, long long dk_t,
                                              long long dv_off, long long dv_b, long long dv_h,
                                              long long dv_t) {
    extern __shared__ float sm[];
    const int pad = hd + 1;
    float *kr = sm;                  // ROWS x hd: this block's key rows
    float *vr = kr + ROWS * hd;      // ROWS x hd: their values
    float *qs = vr + ROWS * hd;      // TILE x pad: a tile of queries
    float *dys = qs + TILE * pad;    // TILE x pad: their output gradients
    float *ms = dys + TILE * pad;    // TILE: row maxima
    float *invs = ms + TILE;         // TILE: inverse row sums
    float *ds_ = invs + TILE;        // TILE: rowsum(dy ∘ y)
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    const int bk = blockIdx.y, bi = bk / kv_heads, kvh = bk % kv_heads;
    const int n_rep = heads / kv_heads;
    const int j = blockIdx.x * ROWS + w;
    const bool col_ok = j < tk;
    const float *kp = k + bi * k_b + kvh * k_h;
    const float *vp = v + bi * v_b + kvh * v_h;
    for (int d = lane; d < hd; d += 32) {
        kr[w * hd + d] = col_ok ? kp[(long long)j * k_t + d] : 0.f;
        vr[w * hd + d] = col_ok ? vp[(long long)j * v_t + d] : 0.f;
    }
    const long long rows = (long long)gridDim.y * n_rep * tq;
    float dk[PER_LANE], dv[PER_LANE];
    for (int c = 0; c < PER_LANE; ++c) dk[c] = dv[c] = 0.f;
    for (int g = 0; g < n_rep; ++g) {
        const int hh = kvh * n_rep + g;
        const long long bh = (long long)bi * heads + hh;
        const float *qp = q + bi * q_b + hh * q_h;
        for (int i0 = 0; i0 < tq; i0 += TILE) {
            __syncthreads();
            load_tile(qs, pad, qp, q_t, i0, tq, hd);
            load_tile(dys, pad, dy + (long long)bi * tq * heads * hd + hh * hd, heads * hd, i0, tq, hd);
            if (threadIdx.x < TILE) {
                const int i = i0 + threadIdx.x;
                const bool ok = i < tq;
                const long long row = bh * tq + i;
                ms[threadIdx.x] = ok ? stats[row] : 0.f;
                invs[threadIdx.x] = ok ? stats[rows + row] : 0.f;
                ds_[threadIdx.x] = ok ? dd[row] : 0.f;
            }
            __syncthreads();
            const int i = i0 + lane;
            float p = 0.f, ds = 0.f;
            if (col_ok && i < tq) {
                float s = dot(qs + lane * pad, kr + w * hd, hd) * scale;
                if (has_mask) s += mask[bi * mask_b + (long long)i * tk + j];
                p = prob(s, ms[lane], invs[lane]);
                ds = p * (dot(dys + lane * pad, vr + w * hd, hd) - ds_[lane]);
            }
            for (int ii = 0; ii < TILE; ++ii) {
                const float pi = __shfl_sync(FULL, p, ii), dsi = __shfl_sync(FULL, ds, ii);
                for (int c = 0; c < PER_LANE; ++c) {
                    const int d = lane + 32 * c;
                    if (d < hd) {
                        dv[c] += pi * dys[ii * pad + d];
                        dk[c] += dsi * qs[ii * pad + d];
                    }
                }
            }
        }
    }
    if (!col_ok) return;
    float *dkp = dqkv + dk_off + bi * dk_b + kvh * dk_h + (long long)j * dk_t;
    float *dvp = dqkv + dv_off + bi * dv_b + kvh * dv_h + (long long)j * dv_t;
    for (int c = 0; c < PER_LANE; ++c) {
        const int d = lane + 32 * c;
        if (d < hd) {
            dkp[d] = dk[c] * scale;
            dvp[d] = dv[c];
        }
    }
}
