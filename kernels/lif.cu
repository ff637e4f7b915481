// Multi-level LIF neurons (LIF = 1 level, MLF = LEVELS levels): fused forward and backward over
// the whole sequence, one thread per neuron (VEC neurons per thread for half2 loads).
//
// Equations (snnres/neurons/functional.py states them; this file follows them):
//   decay_input: H = V + (X - (V - V_rest)) / tau      else: H = V - (V - V_rest) / tau + X
//   S = H >= V_th,k (or H > V_th,k with FIRE_GT) ;  hard reset: V = S * V_reset + (1 - S) * H ;
//   soft: V = H - S * V_th,k
// Division by tau is a multiply by 1/tau rounded to float, as PyTorch's CUDA division by a
// Python scalar does, and every operation is explicitly rounded (__fadd_rn, __fmul_rn: no FMA
// contraction), so fp32 spikes equal the torch reference's on the GPU bit for bit.
//
// Options are compile-time #defines, set by snnres/neurons/backends/cupy_cuda.py when it compiles
// this file (once per option set, cached); the defaults below let `nvcc --ptx` check the file.
// The forward saves nothing but its input; the backward recomputes H, keeping it in registers for
// T <= MAX_T and in a float scratch buffer [LEVELS, T, N] beyond that.

#include <cuda_fp16.h>

#ifndef SCALAR
#define SCALAR float          // storage type: float or __half (compute is always float)
#endif
#ifndef VEC
#define VEC 1                 // neurons per thread: 2 with __half uses __half2 loads (N even)
#endif
#ifndef LEVELS
#define LEVELS 1
#endif
// Level thresholds THRESHOLD_0 .. THRESHOLD_7 (LEVELS <= 8); unused ones are ignored.
#ifndef THRESHOLD_0
#define THRESHOLD_0 1.0f
#endif
#ifndef THRESHOLD_1
#define THRESHOLD_1 0.0f
#endif
#ifndef THRESHOLD_2
#define THRESHOLD_2 0.0f
#endif
#ifndef THRESHOLD_3
#define THRESHOLD_3 0.0f
#endif
#ifndef THRESHOLD_4
#define THRESHOLD_4 0.0f
#endif
#ifndef THRESHOLD_5
#define THRESHOLD_5 0.0f
#endif
#ifndef THRESHOLD_6
#define THRESHOLD_6 0.0f
#endif
#ifndef THRESHOLD_7
#define THRESHOLD_7 0.0f
#endif
#define THRESHOLDS {THRESHOLD_0, THRESHOLD_1, THRESHOLD_2, THRESHOLD_3, THRESHOLD_4, THRESHOLD_5, THRESHOLD_6, THRESHOLD_7}
#if LEVELS < 1 || LEVELS > 8
#error "LEVELS must be in 1..8"
#endif
#ifndef HARD_RESET
#define HARD_RESET 1
#endif
#ifndef DECAY_INPUT
#define DECAY_INPUT 1
#endif
#ifndef DETACH_RESET
#define DETACH_RESET 0
#endif
#ifndef SURROGATE
#define SURROGATE 0           // 0 sigmoid, 1 atan, 2 triangle, 3 rectangle (snnres/neurons/surrogate.py)
#endif
#ifndef MAX_T
#define MAX_T 16
#endif
#ifndef FIRE_GT
#define FIRE_GT 0             // 1: a tie H == V_th does not fire (fire="gt")
#endif

typedef SCALAR scalar_t;

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(__half* p, float v) { *p = __float2half_rn(v); }

// Load / store VEC consecutive neurons starting at element `i` (i is a multiple of VEC).
__device__ __forceinline__ void load_vec(const scalar_t* __restrict__ p, long long i, float out[VEC]) {
#if VEC == 2
    const float2 f = __half22float2(*reinterpret_cast<const __half2*>(p + i));
    out[0] = f.x;
    out[1] = f.y;
#else
    out[0] = to_float(p[i]);
#endif
}

__device__ __forceinline__ void store_vec(scalar_t* __restrict__ p, long long i, const float in[VEC]) {
#if VEC == 2
    *reinterpret_cast<__half2*>(p + i) = __floats2half2_rn(in[0], in[1]);
#else
    store(p + i, in[0]);
#endif
}

__device__ __forceinline__ bool fires(float h, float threshold) {
#if FIRE_GT
    return h > threshold;
#else
    return h >= threshold;
#endif
}

__device__ __forceinline__ float charge(float v, float x, float inv_tau, float v_rest) {
#if DECAY_INPUT
    return __fadd_rn(v, __fmul_rn(__fsub_rn(x, __fsub_rn(v, v_rest)), inv_tau));
#else
    return __fadd_rn(__fsub_rn(v, __fmul_rn(__fsub_rn(v, v_rest), inv_tau)), x);
#endif
}

__device__ __forceinline__ float reset(float h, float s, float threshold, float v_rest) {
#if HARD_RESET
    return __fadd_rn(__fmul_rn(s, v_rest), __fmul_rn(__fsub_rn(1.0f, s), h));
#else
    return __fsub_rn(h, __fmul_rn(s, threshold));
#endif
}

// g'(d), d = H - V_th: the formulas of snnres/neurons/surrogate.py.
__device__ __forceinline__ float surrogate_grad(float d, float alpha, float half_width) {
#if SURROGATE == 0
    const float sg = 1.0f / (1.0f + expf(-alpha * d));
    return (1.0f - sg) * sg * alpha;
#elif SURROGATE == 1
    const float z = d * (1.5707963267948966f * alpha);
    return (0.5f * alpha) / (1.0f + z * z);
#elif SURROGATE == 2
    return fmaxf(0.0f, alpha - alpha * alpha * fabsf(d));
#else
    return fabsf(d) < half_width ? alpha : 0.0f;
#endif
}

extern "C" __global__ void snnres_lif_forward(
    const scalar_t* __restrict__ x, const scalar_t* __restrict__ v0, scalar_t* __restrict__ spikes,
    scalar_t* __restrict__ v_last, const long long T, const long long N, const float inv_tau,
    const float v_rest) {
    const float threshold[8] = THRESHOLDS;
    const long long stride = (long long)gridDim.x * blockDim.x * VEC;
    for (long long i = ((long long)blockIdx.x * blockDim.x + threadIdx.x) * VEC; i < N; i += stride) {
        float v[LEVELS][VEC];
#pragma unroll
        for (int k = 0; k < LEVELS; ++k) load_vec(v0, k * N + i, v[k]);
        for (long long t = 0; t < T; ++t) {
            float xt[VEC], total[VEC];
            load_vec(x, t * N + i, xt);
#pragma unroll
            for (int e = 0; e < VEC; ++e) {
                total[e] = 0.0f;
#pragma unroll
                for (int k = 0; k < LEVELS; ++k) {
                    const float h = charge(v[k][e], xt[e], inv_tau, v_rest);
                    const float s = fires(h, threshold[k]) ? 1.0f : 0.0f;
                    v[k][e] = reset(h, s, threshold[k], v_rest);
                    total[e] += s;
                }
            }
            store_vec(spikes, t * N + i, total);
        }
#pragma unroll
        for (int k = 0; k < LEVELS; ++k) store_vec(v_last, k * N + i, v[k]);
    }
}

// One step back in time for one neuron and one level: returns dL/dH[t], updates the carried dL/dV.
__device__ __forceinline__ float backward_step(float h, float grad_s, float& grad_v, float threshold,
                                               float inv_tau, float v_rest, float alpha, float half_width) {
    const float sg = surrogate_grad(h - threshold, alpha, half_width);
#if HARD_RESET
    float dv_dh = fires(h, threshold) ? 0.0f : 1.0f;
#if !DETACH_RESET
    dv_dh += (v_rest - h) * sg;
#endif
#else
    float dv_dh = 1.0f;
#if !DETACH_RESET
    dv_dh -= threshold * sg;
#endif
#endif
    const float grad_h = grad_s * sg + grad_v * dv_dh;
    grad_v = grad_h - grad_h * inv_tau;
    return grad_h;
}

// dH[t]/dtau given V[t-1] (decay_input: -(X - (V - V_rest)) / tau^2, else (V - V_rest) / tau^2).
__device__ __forceinline__ float dh_dtau(float v_prev, float x, float inv_tau, float v_rest) {
#if DECAY_INPUT
    return -(x - (v_prev - v_rest)) * inv_tau * inv_tau;
#else
    return (v_prev - v_rest) * inv_tau * inv_tau;
#endif
}

__device__ __forceinline__ void add_to_global(float* target, float value) {
    for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_down_sync(0xffffffffu, value, offset);
    if ((threadIdx.x & 31) == 0 && value != 0.0f) atomicAdd(target, value);
}

// H for level k, step t of this thread's neuron: registers when T <= MAX_T, else the scratch.
template <bool IN_REGISTERS>
struct HStore {
    float reg[IN_REGISTERS ? LEVELS * MAX_T : 1];
    float* scratch;
    long long N, i;
    __device__ __forceinline__ float& at(int k, long long t, long long T) {
        if (IN_REGISTERS) return reg[k * MAX_T + t];
        return scratch[(k * T + t) * N + i];
    }
};

template <bool IN_REGISTERS>
__device__ __forceinline__ void backward_neuron(
    const scalar_t* __restrict__ x, const scalar_t* __restrict__ v0, const scalar_t* __restrict__ grad_s,
    const scalar_t* __restrict__ grad_v_last, scalar_t* __restrict__ grad_x, scalar_t* __restrict__ grad_v0,
    float* __restrict__ scratch, float& tau_sum, const long long T, const long long N, const long long i,
    const float inv_tau, const float v_rest, const float alpha, const float half_width) {
    const float threshold[8] = THRESHOLDS;
    HStore<IN_REGISTERS> hs;
    hs.scratch = scratch;
    hs.N = N;
    hs.i = i;
    float v[LEVELS], grad_v[LEVELS];
#pragma unroll
    for (int k = 0; k < LEVELS; ++k) {
        v[k] = to_float(v0[k * N + i]);
        grad_v[k] = grad_v_last != nullptr ? to_float(grad_v_last[k * N + i]) : 0.0f;
    }
    // Recompute H exactly as the forward did (a fully unrolled loop when H lives in registers).
    const long long t_end = IN_REGISTERS ? MAX_T : T;
#pragma unroll
    for (long long t = 0; t < t_end; ++t) {
        if (t >= T) break;
        const float xt = to_float(x[t * N + i]);
#pragma unroll
        for (int k = 0; k < LEVELS; ++k) {
            const float h = charge(v[k], xt, inv_tau, v_rest);
            hs.at(k, t, T) = h;
            v[k] = reset(h, fires(h, threshold[k]) ? 1.0f : 0.0f, threshold[k], v_rest);
        }
    }
    const long long t_top = IN_REGISTERS ? MAX_T - 1 : T - 1;
#pragma unroll
    for (long long t = t_top; t >= 0; --t) {
        if (t >= T) continue;
        const float gs = to_float(grad_s[t * N + i]);
        float gx = 0.0f;
#pragma unroll
        for (int k = 0; k < LEVELS; ++k) {
            const float h = hs.at(k, t, T);
            const float grad_h = backward_step(h, gs, grad_v[k], threshold[k], inv_tau, v_rest, alpha, half_width);
#if DECAY_INPUT
            gx += grad_h * inv_tau;
#else
            gx += grad_h;
#endif
            if (tau_sum == tau_sum) {  // NaN marks "no tau gradient wanted"
                float v_prev = to_float(v0[k * N + i]);
                if (t > 0) {
                    const float hp = hs.at(k, t - 1, T);
                    v_prev = reset(hp, fires(hp, threshold[k]) ? 1.0f : 0.0f, threshold[k], v_rest);
                }
                tau_sum += grad_h * dh_dtau(v_prev, to_float(x[t * N + i]), inv_tau, v_rest);
            }
        }
        store(grad_x + t * N + i, gx);
    }
#pragma unroll
    for (int k = 0; k < LEVELS; ++k) store(grad_v0 + k * N + i, grad_v[k]);
}

// grad_v_last may be null (no gradient for the final state); grad_tau null when not wanted;
// scratch must hold LEVELS * T * N floats when T > MAX_T, else it may be null.
extern "C" __global__ void snnres_lif_backward(
    const scalar_t* __restrict__ x, const scalar_t* __restrict__ v0, const scalar_t* __restrict__ grad_s,
    const scalar_t* __restrict__ grad_v_last, scalar_t* __restrict__ grad_x, scalar_t* __restrict__ grad_v0,
    float* __restrict__ scratch, float* __restrict__ grad_tau, const long long T, const long long N,
    const float inv_tau, const float v_rest, const float alpha, const float half_width) {
    float tau_sum = grad_tau != nullptr ? 0.0f : __int_as_float(0x7fc00000);  // NaN: skip tau terms
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < N; i += stride) {
        if (T <= MAX_T) {
            backward_neuron<true>(x, v0, grad_s, grad_v_last, grad_x, grad_v0, scratch, tau_sum, T, N, i,
                                  inv_tau, v_rest, alpha, half_width);
        } else {
            backward_neuron<false>(x, v0, grad_s, grad_v_last, grad_x, grad_v0, scratch, tau_sum, T, N, i,
                                   inv_tau, v_rest, alpha, half_width);
        }
    }
    if (grad_tau != nullptr) add_to_global(grad_tau, tau_sum);
}
