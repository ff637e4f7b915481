// Event-driven simulator kernels (snnres.sim.cuda): synaptic scatter and neuron update on the GPU.
//
// Layouts as in snnres/sim/kernels.py: a layer's neurons are one float32 row per step, flat index
// (y * W + x) * C + c (channels-last); weights w[C_in][k_h][k_w][C_out], so one input event's
// kernel slice for all output channels is contiguous. Signals are dense [T, N] tensors on the
// device; the work is event-driven: a warp reads 32 inputs, finds the non-zero ones with one
// ballot, and spends its time only on those (each event's taps, its lanes over the output
// channels). Build with --fmad=false: the sums are products rounded, then added, as on the CPU.
// The additions into one accumulator come in any order (atomics), so sums are bit-identical to
// the CPU's only when they are exact (see snnres/sim/README.md, Exactness).

#define SNNRES_FULL_MASK 0xffffffffu
#define SNNRES_MAX_LEVELS 8

// out[t, (oy W_out + ox) C_out + o] += in[t, i] * w[c, ky, kx, o] for every non-zero input
// i = (y W_in + x) C_in + c and every tap with y + pad_h - ky dil_h = oy stride_h, 0 <= oy < H_out
// (likewise x). A linear layer is the 1x1 case with C_in = in_features, one position.
// counts[0] += sum in * fan-out (synaptic operations), counts[1] += sum fan-out (MACs).
extern "C" __global__ void snnres_sim_scatter(const float* in, const float* w, float* out, double* counts,
                                              long long T, long long n_in, long long n_out, int c_in, int w_in,
                                              int h_out, int w_out, int stride_h, int stride_w, int pad_h,
                                              int pad_w, int dil_h, int dil_w, int k_h, int k_w, int c_out) {
    const int lane = threadIdx.x & 31;
    const long long warp = (static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
    const long long n_warps = (static_cast<long long>(gridDim.x) * blockDim.x) >> 5;
    const long long total = T * n_in;
    double weighted = 0.0;
    long long plain = 0;
    for (long long base = warp * 32; base < total; base += n_warps * 32) {  // uniform across the warp
        const long long g = base + lane;
        const float value = g < total ? in[g] : 0.0f;
        unsigned pending = __ballot_sync(SNNRES_FULL_MASK, value != 0.0f);
        while (pending != 0u) {
            const int source = __ffs(static_cast<int>(pending)) - 1;
            pending &= pending - 1u;
            const float v = __shfl_sync(SNNRES_FULL_MASK, value, source);
            const long long e = base + source;
            const long long t = e / n_in;
            const int i = static_cast<int>(e - t * n_in);  // a layer's neurons per step fit in int
            const int pos = i / c_in, c = i - pos * c_in;
            const int y = pos / w_in, x = pos - y * w_in;
            float* row = out + t * n_out;
            int reached = 0;
            for (int ky = 0; ky < k_h; ++ky) {
                const int ny = y + pad_h - ky * dil_h;
                if (ny < 0 || ny % stride_h != 0 || ny / stride_h >= h_out) continue;
                const int oy = ny / stride_h;
                for (int kx = 0; kx < k_w; ++kx) {
                    const int nx = x + pad_w - kx * dil_w;
                    if (nx < 0 || nx % stride_w != 0 || nx / stride_w >= w_out) continue;
                    float* dst = row + (static_cast<long long>(oy) * w_out + nx / stride_w) * c_out;
                    const float* wk = w + ((static_cast<long long>(c) * k_h + ky) * k_w + kx) * c_out;
                    for (int o = lane; o < c_out; o += 32) atomicAdd(dst + o, __fmul_rn(v, wk[o]));
                    ++reached;
                }
            }
            weighted += static_cast<double>(v) * reached * c_out;
            plain += static_cast<long long>(reached) * c_out;
        }
    }
    if (lane == 0 && plain != 0) {  // every lane holds the warp's totals
        atomicAdd(counts, weighted);
        atomicAdd(counts + 1, static_cast<double>(plain));
    }
}

// One thread per neuron i (channel i % C), all T steps in order, Levels levels; thresholds holds
// th[k], the least H that fires (V_th, or the next float above it for fire="gt"), then V_th[k]:
// X = current[t, i] + bias[c] (no bias: X = current), per level
// H = V + (X - (V - V_r)) / tau (decay_input) or V - (V - V_r) / tau + X, as x * (1 / tau) like
// PyTorch on the GPU and kernels/lif.cu; S = H >= th[k]; V = V_r (hard) or H - V_th[k] on a spike,
// else H. spikes[t, i] = number of levels that fired. Per thread: fired += spikes, updates +=
// steps with X != 0 or a level away from rest (what the CPU simulator computes).
template <int Levels>
__device__ __forceinline__ void neurons_body(const float* current, const float* bias, float* v, float* spikes,
                                             const float* thresholds, long long T, long long N, int C,
                                             float inv_tau, float v_rest, int decay_input, int hard_reset,
                                             long long& fired_total, long long& updates) {
    const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
    float th[Levels], v_th[Levels];
    for (int k = 0; k < Levels; ++k) {
        th[k] = thresholds[k];
        v_th[k] = thresholds[Levels + k];
    }
    for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < N; i += stride) {
        float state[Levels];
        for (int k = 0; k < Levels; ++k) state[k] = v[k * N + i];
        const float b = bias != nullptr ? bias[i % C] : 0.0f;
        for (long long t = 0; t < T; ++t) {
            const float x = bias != nullptr ? __fadd_rn(current[t * N + i], b) : current[t * N + i];
            bool busy = x != 0.0f;
            for (int k = 0; k < Levels; ++k) busy |= state[k] != v_rest;
            updates += busy ? 1 : 0;
            int fired = 0;
            for (int k = 0; k < Levels; ++k) {
                const float vk = state[k];
                const float h = decay_input
                    ? __fadd_rn(vk, __fmul_rn(__fsub_rn(x, __fsub_rn(vk, v_rest)), inv_tau))
                    : __fadd_rn(__fsub_rn(vk, __fmul_rn(__fsub_rn(vk, v_rest), inv_tau)), x);
                const bool spike = h >= th[k];
                state[k] = spike ? (hard_reset ? v_rest : __fsub_rn(h, v_th[k])) : h;
                fired += spike ? 1 : 0;
            }
            spikes[t * N + i] = static_cast<float>(fired);
            fired_total += fired;
        }
        for (int k = 0; k < Levels; ++k) v[k * N + i] = state[k];
    }
}

// The neuron update of one layer over T steps (neurons_body, 1..SNNRES_MAX_LEVELS levels);
// counts[0] += spikes, counts[1] += neuron updates.
extern "C" __global__ void snnres_sim_neurons(const float* current, const float* bias, float* v, float* spikes,
                                              double* counts, const float* thresholds, int levels, long long T,
                                              long long N, int C, float inv_tau, float v_rest, int decay_input,
                                              int hard_reset) {
    long long fired = 0, updates = 0;  // integers per thread (FP64 is slow on many GPUs)
#define SNNRES_LEVELS_CASE(K)                                                                                \
    case K:                                                                                                  \
        neurons_body<K>(current, bias, v, spikes, thresholds, T, N, C, inv_tau, v_rest, decay_input, hard_reset, \
                        fired, updates);                                                                     \
        break;
    switch (levels) {
        SNNRES_LEVELS_CASE(1)
        SNNRES_LEVELS_CASE(2)
        SNNRES_LEVELS_CASE(3)
        SNNRES_LEVELS_CASE(4)
        SNNRES_LEVELS_CASE(5)
        SNNRES_LEVELS_CASE(6)
        SNNRES_LEVELS_CASE(7)
        SNNRES_LEVELS_CASE(8)
        default: break;  // the Python side allows 1..SNNRES_MAX_LEVELS
    }
#undef SNNRES_LEVELS_CASE
    for (int delta = 16; delta > 0; delta >>= 1) {  // warp sums, then one atomic per warp
        fired += __shfl_down_sync(SNNRES_FULL_MASK, fired, delta);
        updates += __shfl_down_sync(SNNRES_FULL_MASK, updates, delta);
    }
    if ((threadIdx.x & 31) == 0 && (updates != 0 || fired != 0)) {
        atomicAdd(counts, static_cast<double>(fired));
        atomicAdd(counts + 1, static_cast<double>(updates));
    }
}
