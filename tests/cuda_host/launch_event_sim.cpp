// Host launchers for kernels/event_sim.cu (built by test_sim_cuda_emulated.py with g++ and
// -include cuda_fp16.h, the CUDA stand-in; launch.h runs the grid).
#include "event_sim.cu"

#include "launch.h"

extern "C" int launch_snnres_sim_scatter(unsigned grid, unsigned block, const float* in, const float* w, float* out,
                                         double* counts, long long T, long long n_in, long long n_out, int c_in,
                                         int w_in, int h_out, int w_out, int stride_h, int stride_w, int pad_h,
                                         int pad_w, int dil_h, int dil_w, int k_h, int k_w, int c_out) {
    return launch(grid, block, [=] {
        snnres_sim_scatter(in, w, out, counts, T, n_in, n_out, c_in, w_in, h_out, w_out, stride_h, stride_w, pad_h,
                           pad_w, dil_h, dil_w, k_h, k_w, c_out);
    });
}

extern "C" int launch_snnres_sim_neurons(unsigned grid, unsigned block, const float* current, const float* bias,
                                         float* v, float* spikes, double* counts, const float* thresholds,
                                         int levels, long long T, long long N, int C, float inv_tau, float v_rest,
                                         int decay_input, int hard_reset) {
    return launch(grid, block, [=] {
        snnres_sim_neurons(current, bias, v, spikes, counts, thresholds, levels, T, N, C, inv_tau, v_rest,
                           decay_input, hard_reset);
    });
}
