#!/usr/bin/env bash
# The GPU checks in one command on a machine with an NVIDIA GPU, CuPy and PyTorch: the
# gpu-marked tests (neurons: cupy == torch; simulator: GPU == dense GPU run and CPU simulator),
# benchmarks/lif.py --device cuda and benchmarks/event_sim.py --device cuda.
# Without a package registry there, build the wheels first (bash benchmarks/gpu_wheels.sh) and
# carry .whl/. Results (logs, JSON) go to $OUT, else benchmarks/results.
#   bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
out=${OUT:-$repo/benchmarks/results}
mkdir -p "$out"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
# Run from a copy outside the checkout, so that `import snnres` is the installed package
# (the checkout's snnres/ lacks snnres._kernels, which the wheel maps from kernels/).
work=$(mktemp -d)
cp -r tests benchmarks pyproject.toml "$work/"
cd "$work"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$out/gpu.txt"
python3 -c "import snnres, cupy, torch; print('snnres', snnres.__file__, 'cupy', cupy.__version__, 'torch', torch.__version__)" 2>&1 | tee -a "$out/gpu.txt"
python3 -m pytest -q -p no:cacheprovider -m gpu -rs tests/neurons/test_neurons_cupy.py tests/sim/test_sim_cuda.py \
  2>&1 | tee "$out/gpu-tests.log"
tests_rc=${PIPESTATUS[0]}
python3 benchmarks/lif.py --device cuda --out "$out" 2>&1 | tee "$out/lif-cuda.log"
bench_rc=${PIPESTATUS[0]}
python3 benchmarks/event_sim.py --device cuda --out "$out" 2>&1 | tee "$out/event_sim-cuda.log"
sim_rc=${PIPESTATUS[0]}
echo "gpu tests rc=$tests_rc, lif benchmark rc=$bench_rc, event_sim benchmark rc=$sim_rc" | tee -a "$out/gpu.txt"
[ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ] && [ "$sim_rc" -eq 0 ]
