"""CUDA C sources of snnres kernels, installed as the package data snnres._kernels."""
