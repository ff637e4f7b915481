// Host grid launcher for the kernels built with cuda_fp16.h (the CUDA stand-in): the grid's
// blocks run in turn and each block's warps in turn; a warp's 32 lanes run as 32 host threads,
// so that warp shuffles and ballots meet real partners.
#pragma once

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
