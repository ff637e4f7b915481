#!/usr/bin/env bash
# Build the wheelhouse that benchmarks/gpu_check.sh installs on a GPU machine with no registry:
# snnres itself, and the peers and test oracles its Python 3.12 image lacks (SpikingJelly 2.0,
# Norse 1.1 with nir / nirtorch, loguru; Tonic with importRosbag, which snnres.data imports; the
# image has h5py, scipy and tqdm). Pure-Python wheels, built or downloaded here.
#   bash benchmarks/gpu_wheels.sh [.whl]
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-.whl}
rm -rf "$dest" && mkdir -p "$dest"
python3 -m pip wheel -q --no-deps -w "$dest" . "norse==1.1.0"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$dest" "spikingjelly==2.0.0" nir nirtorch loguru "tonic==1.7.0" importRosbag
ls -la "$dest"
