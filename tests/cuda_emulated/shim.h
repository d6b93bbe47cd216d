// Runs CUDA C kernels on the CPU, so that their indexing, tiling and synchronisation are tested
// on machines without a GPU (tests/cuda_emulated.rs). Every CUDA thread of a block is a fiber
// (ucontext) on one OS thread, switched at each barrier; blocks run one after another, so one
// static array is the block's shared memory. `__syncthreads` is a barrier of the block's
// fibers, a warp shuffle goes through a per-warp buffer between two barriers of the warp.
// Device intrinsics are the C library's (`expf`, `fmaxf`). Deterministic, one CPU core; for
// small shapes.
#include <ucontext.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

struct Dim3 {
    unsigned x = 1, y = 1, z = 1;
};
Dim3 threadIdx, blockIdx, blockDim, gridDim;
// The block's shared memory (48 KiB, as a GPU's default limit).
float emu_shared_memory[12 * 1024];

namespace emu {
struct Fiber {
    ucontext_t context;
    std::vector<char> stack;
    bool done = false;
};
ucontext_t scheduler;
std::vector<Fiber> fibers;
unsigned current = 0;
std::function<void()> body;

struct Barrier {
    unsigned size = 0, arrived = 0, generation = 0;
};
Barrier block_barrier;
std::vector<Barrier> warp_barriers;
float warp_values[32][32];

// Back to the scheduler, which resumes the other fibers in turn.
inline void yield() { swapcontext(&fibers[current].context, &scheduler); }

inline void wait(Barrier &b) {
    const unsigned g = b.generation;
    if (++b.arrived == b.size) {
        b.arrived = 0;
        ++b.generation;
        return;
    }
    while (b.generation == g) yield();
}

inline float exchange(float v, int src_lane) {
    const unsigned w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    warp_values[w][lane] = v;
    wait(warp_barriers[w]);
    const float r = warp_values[w][src_lane & 31];
    wait(warp_barriers[w]);
    return r;
}

inline void entry() {
    body();
    fibers[current].done = true;
}

// Runs `kernel` (a callable without arguments) over the grid.
template <class F> void launch(Dim3 grid, Dim3 block, F kernel) {
    gridDim = grid;
    blockDim = block;
    body = kernel;
    for (unsigned by = 0; by < grid.y; ++by)
        for (unsigned bx = 0; bx < grid.x; ++bx) {
            blockIdx.x = bx;
            blockIdx.y = by;
            block_barrier = Barrier{block.x};
            warp_barriers.assign(block.x / 32, Barrier{32});
            fibers.assign(block.x, Fiber{});
            for (auto &f : fibers) {
                f.stack.resize(64 * 1024);
                getcontext(&f.context);
                f.context.uc_stack.ss_sp = f.stack.data();
                f.context.uc_stack.ss_size = f.stack.size();
                f.context.uc_link = &scheduler;
                makecontext(&f.context, entry, 0);
            }
            for (bool running = true; running;) {
                running = false;
                for (current = 0; current < block.x; ++current) {
                    if (fibers[current].done) continue;
                    threadIdx.x = current;
                    swapcontext(&scheduler, &fibers[current].context);
                    running |= !fibers[current].done;
                }
            }
        }
}
}  // namespace emu

#define __global__
#define __device__
#define __forceinline__ inline
// Static `__shared__` variables (block_sum's partial sums) become static locals, shared by the
// block's fibers; a file whose kernels use `extern __shared__` defines EMU_SHARED empty first.
#ifndef EMU_SHARED
#define EMU_SHARED static
#endif
#define __shared__ EMU_SHARED
inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }
// `extern __shared__ float sm[];` in a kernel names the emulated shared memory.
#define sm emu_shared_memory
inline void __syncthreads() { emu::wait(emu::block_barrier); }
inline float __shfl_sync(unsigned, float v, int src) { return emu::exchange(v, src); }
inline float __shfl_xor_sync(unsigned, float v, int o) {
    return emu::exchange(v, (threadIdx.x & 31) ^ o);
}
