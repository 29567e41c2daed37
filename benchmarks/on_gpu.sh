#!/usr/bin/env bash
# Issue 11's CUDA figures in one call on a lent GPU machine (device tool: run with timeout_s=560).
#
# That machine's image has PyTorch, Triton and NumPy but may lack array-api-compat, losslab's other core
# dependency, and it cannot download. Before the call, here in the repository's root:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: -d .whl array-api-compat==1.16.0
# then: run(command="bash benchmarks/on_gpu.sh", carry=[".whl"], timeout_s=560).
#
# It writes to $OUT: gpu.txt (the GPU), tests.log (the CUDA tests, at most TESTS_S seconds) and
# torch_losses-cuda-DATE.{json,md} (benchmarks/torch_losses.py on CUDA without torch.compile, huge size
# first; no point starts after BUDGET_S seconds, and those it did not reach are marked skipped).
set -uo pipefail
cd "$(dirname "$0")/.."  # the repository's root, wherever it is called from
OUT=${OUT:-/tmp/losslab-gpu}
TESTS_S=${TESTS_S:-120}
BUDGET_S=${BUDGET_S:-330}
mkdir -p "$OUT"

if ! python3 -c "import array_api_compat" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
        || { echo "array-api-compat is missing and no wheel was carried: see the top of $0" >&2; exit 2; }
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" >> "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"

timeout "$TESTS_S" python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_gpu.py \
    tests/test_gpu_kernels.py > "$OUT/tests.log" 2>&1
echo "CUDA tests: exit $? (124: stopped at ${TESTS_S} s)" | tee -a "$OUT/tests.log"
tail -n 5 "$OUT/tests.log"

python3 benchmarks/torch_losses.py --device cuda --sizes huge small large --no-compile --budget-s "$BUDGET_S" \
    --out "$OUT"
