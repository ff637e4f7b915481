// Host stand-in for the CUDA built-ins that kernels/lif.cu uses, so that g++ can compile the
// kernel source unchanged and the tests can run it on the CPU (test_neurons_cuda_emulated.py).
// It takes the place of <cuda_fp16.h>, lif.cu's only include (the test puts this folder first
// on the include path). What it models, and how:
//   - thread and block indices: per-host-thread variables set by launch.cpp, which runs the
//     blocks one after another and each warp's 32 lanes as 32 host threads;
//   - __shfl_down_sync: the lanes of a warp meet at a barrier, read their partner's value, and
//     meet again (a lane past the warp's end keeps its own value, as on the GPU);
//   - atomicAdd on float: under a mutex;
//   - __fadd_rn / __fsub_rn / __fmul_rn: plain IEEE single operations (the build uses
//     -ffp-contract=off, so nothing is fused into an FMA, as nvcc --fmad=false);
//   - __half: IEEE binary16 bits converted with the CPU's F16C instructions, round to nearest even.
// Not modelled: memory coherence between threads beyond what the kernels need (they write
// disjoint elements), warp divergence, shared memory (lif.cu uses none).
#pragma once

#include <barrier>
#include <cstring>
#include <immintrin.h>
#include <math.h>
#include <mutex>

#define __global__
#define __device__
#define __forceinline__ inline

struct dim3 {
    unsigned x = 0, y = 0, z = 0;
};
inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }

inline float __int_as_float(int bits) {
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

struct __half {
    unsigned short bits;
};
struct __half2 {
    __half x, y;
};
struct float2 {
    float x, y;
};

inline float __half2float(__half h) { return _cvtsh_ss(h.bits); }
inline __half __float2half_rn(float f) {
    return __half{static_cast<unsigned short>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT))};
}
inline float2 __half22float2(__half2 h) { return float2{__half2float(h.x), __half2float(h.y)}; }
inline __half2 __floats2half2_rn(float a, float b) { return __half2{__float2half_rn(a), __float2half_rn(b)}; }

// One warp in flight: its lanes' values for a shuffle, and the barrier they meet at.
struct Warp {
    std::barrier<> meet{32};
    float lane_value[32];
};
inline thread_local Warp* this_warp = nullptr;

inline float __shfl_down_sync(unsigned /*mask: all lanes take part*/, float value, unsigned delta) {
    const unsigned lane = threadIdx.x & 31u;
    this_warp->lane_value[lane] = value;
    this_warp->meet.arrive_and_wait();
    const float result = lane + delta < 32u ? this_warp->lane_value[lane + delta] : value;
    this_warp->meet.arrive_and_wait();
    return result;
}

inline std::mutex atomic_add_mutex;
inline float atomicAdd(float* address, float value) {
    std::lock_guard<std::mutex> lock(atomic_add_mutex);
    const float old = *address;
    *address = old + value;
    return old;
}
