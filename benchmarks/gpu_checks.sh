#!/usr/bin/env bash
# Every GPU check in one run (for a machine with one CUDA GPU; about 8 minutes on an H100): the
# CUDA tests, a probe of the NCCL data path, GPU memory per method (Table 8, digits scale) and the
# Table 7 throughput layout. Logs go to $OUT (or ./gpu-logs).
#   bash benchmarks/gpu_checks.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-logs}
mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import torch, sklearn; print('torch', torch.__version__, 'sklearn', sklearn.__version__, torch.cuda.get_device_name(0))"

echo "== CUDA tests, and the pipeline tests with a GPU present"
timeout 300 python3 -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py tests/test_pipeline.py \
  tests/test_input_errors.py 2>&1 | tee "$out/tests.log" | tail -25

echo "== NCCL data path forced onto one GPU (NCCL is expected to refuse two ranks on one GPU)"
probe=$(mktemp --suffix .py)  # a file: spawned stage processes re-import the main module
cat > "$probe" <<'PY'
import numpy as np
from deinforeg_sklearn import DeInfoRegClassifier
from deinforeg_sklearn.blocks import Dense

if __name__ == "__main__":
    rng = np.random.RandomState(0)
    X, y = rng.rand(256, 20).astype(np.float32), rng.randint(0, 3, 256)
    try:
        est = DeInfoRegClassifier(blocks=[Dense(16)] * 2, devices=["cuda:0", "cuda:0"], engine="processes",
                                  max_iter=2, random_state=0).fit(X, y)
        print("NCCL on one GPU trained; accuracy", est.score(X, y))
    except Exception as exc:
        print("NCCL on one GPU failed:", type(exc).__name__, str(exc).splitlines()[-1][:300])
PY
DEINFOREG_DATA_BACKEND=nccl DEINFOREG_DIST_TIMEOUT=60 timeout 120 python3 "$probe" 2>&1 | tail -8

echo "== GPU memory per method (Table 8 layout, digits LSTM)"
timeout 150 python3 benchmarks/memory.py --quick --device cuda:0 --out "$out" 2>&1 | tail -8

echo "== Throughput (Table 7 layout), the paper's VGG on one GPU"
timeout 420 python3 benchmarks/throughput.py --model vgg --device cuda:0 --stages 2 \
  --batch-sizes 256 512 1024 --samples 10240 --epochs 3 2>&1 | tee "$out/throughput.log"
