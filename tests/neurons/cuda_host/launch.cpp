// Host launchers for kernels/lif.cu (built by test_neurons_cuda_emulated.py with g++, beside
// cuda_fp16.h, which emulates the CUDA built-ins). A launch runs the grid's blocks in turn and
// each block's warps in turn; a warp's 32 lanes run as 32 host threads, so that the warp
// shuffle in the backward's tau-gradient reduction meets real partners.
#include "lif.cu"

#include <thread>
#include <vector>

template <typename Body>
static int launch(unsigned grid, unsigned block, Body body) {
    if (grid == 0 || block == 0 || block % 32 != 0) return -1;  // whole warps only
    gridDim = dim3{grid, 1, 1};
    blockDim = dim3{block, 1, 1};
    for (unsigned b = 0; b < grid; ++b) {
        for (unsigned first = 0; first < block; first += 32) {
            Warp warp;
            std::vector<std::thread> lanes;
            lanes.reserve(32);
            for (unsigned lane = 0; lane < 32; ++lane) {
                lanes.emplace_back([&warp, &body, b, first, lane] {
                    blockIdx = dim3{b, 0, 0};
                    threadIdx = dim3{first + lane, 0, 0};
                    this_warp = &warp;
                    body();
                });
            }
            for (auto& lane : lanes) lane.join();
        }
    }
    return 0;
}

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
