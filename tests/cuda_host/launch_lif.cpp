// Host launchers for kernels/lif.cu (built by test_neurons_cuda_emulated.py with g++, beside
// cuda_fp16.h, which emulates the CUDA built-ins; launch.h runs the grid).
#include "lif.cu"

#include "launch.h"

extern "C" int launch_snnres_lif_forward(unsigned grid, unsigned block, const scalar_t* x, const scalar_t* v0,
                                         scalar_t* spikes, scalar_t* v_last, long long T, long long N,
                                         float inv_tau, float v_rest) {
    return launch(grid, block, [=] { snnres_lif_forward(x, v0, spikes, v_last, T, N, inv_tau, v_rest); });
}

extern "C" int launch_snnres_lif_backward(unsigned grid, unsigned block, const scalar_t* x, const scalar_t* v0,
                                          const scalar_t* grad_s, const scalar_t* grad_v_last, scalar_t* grad_x,
                                          scalar_t* grad_v0, float* scratch, float* grad_tau, long long T,
                                          long long N, float inv_tau, float v_rest, float alpha, float half_width) {
    return launch(grid, block, [=] {
        snnres_lif_backward(x, v0, grad_s, grad_v_last, grad_x, grad_v0, scratch, grad_tau, T, N, inv_tau, v_rest,
                            alpha, half_width);
    });
}
