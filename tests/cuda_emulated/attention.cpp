// The flash-attention kernels (src/kernels/cuda/attention.cu) run on the CPU through shim.h,
// against attention computed directly in double precision: the output and the gradients of the
// queries, keys and values, for packed projections and grouped-query layouts, masks per
// sequence, shared and absent, tails of every tile, head widths 1 to 128 and fewer queries than
// keys. Prints one line per case; exits with the number of failing cases.
// `extern __shared__` (dynamic shared memory) below: no `static`.
#define EMU_SHARED
#include "shim.h"
#include "../../src/kernels/cuda/attention.cu"

#include <algorithm>
#include <cstdio>
#include <random>

struct Case {
    int b, heads, kv_heads, tq, tk, hd;
    bool packed, has_mask, shared_mask;
};

// Strides (sequence, head, position) and offset of one operand in its buffer.
struct Place {
    long long s[3], off;
    long long at(int bi, int h, int t) const { return off + bi * s[0] + h * s[1] + t * s[2]; }
};

static int check(const Case &c) {
    std::mt19937 rng(7);
    std::normal_distribution<float> normal;
    const int h = c.heads * c.hd, rep = c.heads / c.kv_heads;
    const long long nq = (long long)c.b * c.heads * c.tq * c.hd;
    const long long nk = (long long)c.b * c.kv_heads * c.tk * c.hd;
    // Packed: qkv [b, t, 3h], each operand strided inside it (heads == kv_heads, tq == tk);
    // otherwise q, k, v contiguous one after another.
    std::vector<float> x(c.packed ? (long long)c.b * c.tq * 3 * h : nq + 2 * nk);
    for (auto &v : x) v = normal(rng);
    Place q, k, v;
    if (c.packed) {
        const long long s0 = (long long)c.tq * 3 * h;
        q = {{s0, c.hd, 3 * h}, 0};
        k = {{s0, c.hd, 3 * h}, h};
        v = {{s0, c.hd, 3 * h}, 2 * h};
    } else {
        q = {{(long long)c.heads * c.tq * c.hd, (long long)c.tq * c.hd, c.hd}, 0};
        k = {{(long long)c.kv_heads * c.tk * c.hd, (long long)c.tk * c.hd, c.hd}, nq};
        v = {{(long long)c.kv_heads * c.tk * c.hd, (long long)c.tk * c.hd, c.hd}, nq + nk};
    }
    // Causal (query i at key position tk - tq + i) and, in sequence s, the first 2s keys hidden:
    // sequence 1's first query sees no key at all when tq == tk.
    const int mb = c.shared_mask ? 1 : c.b;
    std::vector<float> mask((long long)mb * c.tq * c.tk, 0.f);
    for (int s = 0; s < mb; ++s)
        for (int i = 0; i < c.tq; ++i)
            for (int j = 0; j < c.tk; ++j)
                if (j > c.tk - c.tq + i || j < 2 * s) mask[((long long)s * c.tq + i) * c.tk + j] = -3.4028235e38f;
    const long long mask_b = c.shared_mask ? 0 : (long long)c.tq * c.tk;
    std::vector<float> dy(nq), y(nq), stats(2LL * c.b * c.heads * c.tq), dd(c.b * c.heads * c.tq);
    for (auto &g : dy) g = normal(rng);
    std::vector<float> grads(x.size(), 0.f);
    const float scale = 1.f / std::sqrt((float)c.hd);
    const float *base = x.data();
    const Dim3 block{256};
    const Dim3 by_query{(unsigned)((c.tq + 7) / 8), (unsigned)(c.b * c.heads)};
    const Dim3 by_key{(unsigned)((c.tk + 7) / 8), (unsigned)(c.b * c.kv_heads)};
#define ARGS                                                                                   \
    c.heads, c.kv_heads, c.tq, c.tk, c.hd, scale, base + q.off, q.s[0], q.s[1], q.s[2],        \
        base + k.off, k.s[0], k.s[1], k.s[2], base + v.off, v.s[0], v.s[1], v.s[2], mask.data(), \
        mask_b, (int)c.has_mask
    emu::launch(by_query, block, [&] { flash_fwd_f32(ARGS, y.data(), stats.data()); });
    emu::launch(by_query, block, [&] {
        flash_bwd_dq_f32(ARGS, y.data(), dy.data(), stats.data(), dd.data(), grads.data(), q.off,
                         q.s[0], q.s[1], q.s[2]);
    });
    emu::launch(by_key, block, [&] {
        flash_bwd_dkdv_f32(ARGS, dy.data(), stats.data(), dd.data(), grads.data(), k.off, k.s[0],
                           k.s[1], k.s[2], v.off, v.s[0], v.s[1], v.s[2]);
    });
#undef ARGS
    // The reference: softmax(q kᵀ · scale + mask) v and its gradients, in double precision.
    double y_err = 0, y_max = 0;
    std::vector<double> want(x.size(), 0.0);
    for (int bi = 0; bi < c.b; ++bi)
        for (int hh = 0; hh < c.heads; ++hh) {
            const int kh = hh / rep;
            for (int i = 0; i < c.tq; ++i) {
                std::vector<double> p(c.tk);
                double m = -1e300, l = 0;
                for (int j = 0; j < c.tk; ++j) {
                    double s = 0;
                    for (int d = 0; d < c.hd; ++d) s += (double)x[q.at(bi, hh, i) + d] * x[k.at(bi, kh, j) + d];
                    p[j] = s * scale;
                    if (c.has_mask) p[j] += mask[((long long)(c.shared_mask ? 0 : bi) * c.tq + i) * c.tk + j];
                    m = std::max(m, p[j]);
                }
                for (auto &e : p) l += (e = std::exp(e - m));
                for (auto &e : p) e /= l;
                const long long row = ((long long)bi * c.tq + i) * h + hh * c.hd;
                double dot = 0;
                for (int d = 0; d < c.hd; ++d) {
                    double out = 0;
                    for (int j = 0; j < c.tk; ++j) out += p[j] * x[v.at(bi, kh, j) + d];
                    y_err = std::max(y_err, std::abs(out - y[row + d]));
                    y_max = std::max(y_max, std::abs(out));
                    dot += out * dy[row + d];
                }
                for (int j = 0; j < c.tk; ++j) {
                    double dp = 0;
                    for (int d = 0; d < c.hd; ++d) dp += dy[row + d] * x[v.at(bi, kh, j) + d];
                    const double ds = p[j] * (dp - dot);
                    for (int d = 0; d < c.hd; ++d) {
                        want[q.at(bi, hh, i) + d] += ds * x[k.at(bi, kh, j) + d] * scale;
                        want[k.at(bi, kh, j) + d] += ds * x[q.at(bi, hh, i) + d] * scale;
                        want[v.at(bi, kh, j) + d] += p[j] * dy[row + d];
                    }
                }
            }
        }
    double g_err = 0, g_max = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        g_err = std::max(g_err, std::abs(want[i] - grads[i]));
        g_max = std::max(g_max, std::abs(want[i]));
    }
    const double y_rel = y_err / y_max, g_rel = g_err / g_max;
    const bool ok = y_rel <= 1e-5 && g_rel <= 1e-5;
    std::printf("%s b %d, heads %d over %d, queries %d, keys %d, head %d, %s, %s: output %.2e, "
                "gradients %.2e (relative to the largest)\n",
                ok ? "ok  " : "FAIL", c.b, c.heads, c.kv_heads, c.tq, c.tk, c.hd,
                c.packed ? "packed" : "grouped",
                !c.has_mask ? "no mask" : c.shared_mask ? "one mask" : "a mask per sequence", y_rel, g_rel);
    return ok ? 0 : 1;
}

int main() {
    const Case cases[] = {
        {2, 2, 2, 37, 37, 64, true, true, false},
        {2, 2, 2, 37, 37, 64, true, true, true},
        {1, 2, 2, 33, 33, 128, true, false, false},
        {2, 4, 2, 37, 37, 80, false, true, false},
        {1, 4, 2, 5, 40, 128, false, true, false},
        {1, 2, 1, 9, 9, 1, false, false, false},
    };
    int failed = 0;
    for (const Case &c : cases) failed += check(c);
    return failed;
}
