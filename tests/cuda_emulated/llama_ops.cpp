// The CUDA twins of the Llama family's RMSNorm and SwiGLU (src/kernels/cuda/kernels.cu) run on
// the CPU through shim.h, against the ops computed from their definitions in double precision,
// forward and backward, at the launch shapes src/kernels/cuda.rs uses: one block per row of a
// multiple of 32 threads (at most 1024, so wide rows loop), and a grid-stride loop of 256-thread
// blocks. Prints one line per case; exits with the number of failing cases.
#include "shim.h"
#include "../../src/kernels/cuda/kernels.cu"

#include <algorithm>
#include <cstdio>
#include <random>

static int report(const char *what, double err, double big) {
    const double rel = err / std::max(big, 1e-30);
    const bool ok = rel <= 1e-5;
    std::printf("%s %s: %.2e (relative to the largest)\n", ok ? "ok  " : "FAIL", what, rel);
    return ok ? 0 : 1;
}

static int rms_norm(int rows, int d) {
    std::mt19937 rng(d);
    std::normal_distribution<float> normal;
    const size_t n = (size_t)rows * d;
    std::vector<float> x(n), w(d), g(n), y(n), out(2 * n);
    for (auto &v : x) v = normal(rng);
    for (auto &v : w) v = normal(rng);
    for (auto &v : g) v = normal(rng);
    const float eps = 1e-6f;
    const Dim3 grid{(unsigned)rows}, block{(unsigned)std::clamp((d + 31) / 32 * 32, 32, 1024)};
    emu::launch(grid, block, [&] { rms_norm_fwd_f32(d, eps, x.data(), w.data(), y.data()); });
    emu::launch(grid, block, [&] { rms_norm_bwd_f32(n, d, eps, x.data(), w.data(), g.data(), out.data()); });
    // y = x r w with r = (mean x² + eps)^-1/2; dx_j = r g_j w_j - r³ x_j / d Σ_i g_i w_i x_i;
    // the weight's per-row part g x r.
    double ye = 0, yb = 0, de = 0, db = 0;
    for (int row = 0; row < rows; ++row) {
        const size_t b = (size_t)row * d;
        double ms = 0, gwx = 0;
        for (int i = 0; i < d; ++i) ms += (double)x[b + i] * x[b + i];
        const double r = 1.0 / std::sqrt(ms / d + eps);
        for (int i = 0; i < d; ++i) gwx += (double)g[b + i] * w[i] * x[b + i];
        for (int i = 0; i < d; ++i) {
            const double yv = x[b + i] * r * w[i];
            const double dx = r * g[b + i] * w[i] - r * r * r * x[b + i] / d * gwx;
            const double gx = g[b + i] * x[b + i] * r;
            ye = std::max(ye, std::abs(yv - y[b + i]));
            yb = std::max(yb, std::abs(yv));
            de = std::max({de, std::abs(dx - out[b + i]), std::abs(gx - out[n + b + i])});
            db = std::max({db, std::abs(dx), std::abs(gx)});
        }
    }
    char what[96];
    std::snprintf(what, sizeof what, "rms_norm %d rows of %d, %u threads: output", rows, d, block.x);
    int failed = report(what, ye, yb);
    std::snprintf(what, sizeof what, "rms_norm %d rows of %d, %u threads: gradients", rows, d, block.x);
    return failed + report(what, de, db);
}

static int swiglu(size_t n) {
    std::mt19937 rng((unsigned)n);
    std::normal_distribution<float> normal;
    std::vector<float> gate(n), up(n), dy(n), y(n), out(2 * n);
    for (auto &v : gate) v = 3 * normal(rng);
    for (auto &v : up) v = normal(rng);
    for (auto &v : dy) v = normal(rng);
    const Dim3 grid{(unsigned)std::clamp<size_t>((n + 255) / 256, 1, 65535)}, block{256};
    emu::launch(grid, block, [&] { swiglu_fwd_f32(n, gate.data(), up.data(), y.data()); });
    emu::launch(grid, block, [&] { swiglu_bwd_f32(n, gate.data(), up.data(), dy.data(), out.data()); });
    // y = silu(gate) up; d gate = dy up σ (1 + gate (1 - σ)); d up = dy silu(gate).
    double ye = 0, yb = 0, de = 0, db = 0;
    for (size_t i = 0; i < n; ++i) {
        const double g = gate[i], s = 1 / (1 + std::exp(-g));
        const double yv = g * s * up[i], dg = dy[i] * up[i] * s * (1 + g * (1 - s)), du = dy[i] * g * s;
        ye = std::max(ye, std::abs(yv - y[i]));
        yb = std::max(yb, std::abs(yv));
        de = std::max({de, std::abs(dg - out[i]), std::abs(du - out[n + i])});
        db = std::max({db, std::abs(dg), std::abs(du)});
    }
    char what[64];
    std::snprintf(what, sizeof what, "swiglu %zu values: output", n);
    int failed = report(what, ye, yb);
    std::snprintf(what, sizeof what, "swiglu %zu values: gradients", n);
    return failed + report(what, de, db);
}

int main() {
    int failed = 0;
    failed += rms_norm(3, 100);   // a partial warp
    failed += rms_norm(2, 384);   // 12 warps
    failed += rms_norm(2, 1500);  // 1024 threads, some with two values
    failed += swiglu(1000);       // a partial block
    return failed;
}
