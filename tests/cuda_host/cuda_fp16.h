// Host stand-in for the CUDA built-ins that kernels/*.cu use, so that g++ can compile the
// kernel sources unchanged and the tests can run them on the CPU (test_neurons_cuda_emulated.py,
// test_sim_cuda_emulated.py). It takes the place of <cuda_fp16.h>, lif.cu's only include (the
// test puts this folder first on the include path; event_sim.cu gets it with g++ -include).
// What it models, and how:
//   - thread and block indices: per-host-thread variables set by launch.h, which runs the
//     blocks one after another and each warp's 32 lanes as 32 host threads;
//   - __shfl_down_sync, __shfl_sync, __ballot_sync: the lanes of a warp meet at a barrier, read
//     their partners' values, and meet again (a lane past the warp's end keeps its own value in
//     a shuffle down, as on the GPU); __ffs: the compiler's ffs;
//   - atomicAdd on float and double: under a mutex;
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

// One warp in flight: its lanes' values for a shuffle or ballot, and the barrier they meet at.
struct Warp {
    std::barrier<> meet{32};
    alignas(8) unsigned char lane_value[32][8];
};
inline thread_local Warp* this_warp = nullptr;

// Every lane publishes ``value``; each gets lane ``source(lane)``'s (its own if out of range).
template <typename T, typename Source>
inline T warp_exchange(T value, Source source) {
    static_assert(sizeof(T) <= 8);
    const unsigned lane = threadIdx.x & 31u;
    std::memcpy(this_warp->lane_value[lane], &value, sizeof value);
    this_warp->meet.arrive_and_wait();
    const unsigned from = source(lane);
    T result = value;
    if (from < 32u) std::memcpy(&result, this_warp->lane_value[from], sizeof result);
    this_warp->meet.arrive_and_wait();
    return result;
}

template <typename T>
inline T __shfl_down_sync(unsigned /*mask: all lanes take part*/, T value, unsigned delta) {
    return warp_exchange(value, [delta](unsigned lane) { return lane + delta; });
}

template <typename T>
inline T __shfl_sync(unsigned /*mask: all lanes take part*/, T value, int source) {
    return warp_exchange(value, [source](unsigned) { return static_cast<unsigned>(source) & 31u; });
}

inline unsigned __ballot_sync(unsigned /*mask: all lanes take part*/, int predicate) {
    const unsigned lane = threadIdx.x & 31u;
    const unsigned char bit = predicate != 0;
    this_warp->lane_value[lane][0] = bit;
    this_warp->meet.arrive_and_wait();
    unsigned ballot = 0;
    for (unsigned j = 0; j < 32u; ++j) ballot |= static_cast<unsigned>(this_warp->lane_value[j][0]) << j;
    this_warp->meet.arrive_and_wait();
    return ballot;
}

inline int __ffs(int bits) { return __builtin_ffs(bits); }

inline std::mutex atomic_add_mutex;
template <typename T>
inline T atomicAdd(T* address, T value) {
    std::lock_guard<std::mutex> lock(atomic_add_mutex);
    const T old = *address;
    *address = old + value;
    return old;
}
