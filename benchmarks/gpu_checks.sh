#!/usr/bin/env bash
# Every GPU check in one run, for a machine with one CUDA GPU. Logs and result pages go to $OUT
# (or ./gpu-logs). Name sections to run only those (default: all, about 10 minutes on an H100):
#   tests       the CUDA tests (two replicas on one GPU included), and the pipeline and replica
#               tests with a GPU present (about 4 minutes)
#   nccl        a probe of the NCCL data path forced onto one GPU
#   memory      GPU memory per method, Table 8 (about 2 minutes): VADER LSTM when ./gpu-data holds
#               an offline copy (python benchmarks/text_sentiment.py --offline-copy gpu-data, made
#               where the internet is; GPU hosts often have none), else digits
#   throughput  the Table 7 layout, the paper's VGG on one GPU, float32 then bfloat16 (about 7 minutes)
#   wavefront   BP, sequential and wavefront schedules side by side: 12 x Dense(512) at batch 128
#               (target: wavefront DeInfoReg >= 1.0x BP's samples/s), 12 x Dense(128), the conv
#               model; then the schedule-equivalence tests on the GPU (about 3 minutes)
#   bash benchmarks/gpu_checks.sh                 # everything
#   bash benchmarks/gpu_checks.sh memory          # Table 8 only
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-logs}
mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
sections=${*:-tests nccl memory throughput wavefront}
for section in $sections; do
  case $section in
    tests | nccl | memory | throughput | wavefront) ;;
    *) echo "unknown section '$section': choose from tests nccl memory throughput wavefront" >&2; exit 2 ;;
  esac
done
nvidia-smi -L || { echo "no NVIDIA GPU here: these checks need one" >&2; exit 2; }
python3 -c "import torch, sklearn; print('torch', torch.__version__, 'sklearn', sklearn.__version__, torch.cuda.get_device_name(0))"

tests() {
  echo "== CUDA tests, and the pipeline tests with a GPU present"
  timeout 420 python3 -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py tests/test_pipeline.py \
    tests/test_input_errors.py tests/test_replicas.py 2>&1 | tee "$out/tests.log" | tail -25
}

nccl() {
  echo "== NCCL data path forced onto one GPU (NCCL is expected to refuse two ranks on one GPU)"
  local probe
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
}

memory() {
  echo "== GPU memory per method (Table 8)"
  timeout 240 python3 -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py -k memory 2>&1 | tail -3
  local vectors=gpu-data/vader-words.glove-50d.txt.gz
  if [ -f "$vectors" ]; then
    timeout 420 python3 benchmarks/memory.py --task vader-lstm --device cuda:0 --data-dir gpu-data \
      --vectors "$vectors" --out "$out" 2>&1 | tee "$out/memory.log" | tail -16
  else
    echo "(no ./gpu-data offline copy: digits scale)"
    timeout 150 python3 benchmarks/memory.py --quick --device cuda:0 --out "$out" 2>&1 | tail -16
  fi
}

throughput() {
  echo "== Throughput (Table 7 layout), the paper's VGG on one GPU"
  timeout 420 python3 benchmarks/throughput.py --model vgg --device cuda:0 --stages 2 \
    --batch-sizes 256 512 1024 --samples 10240 --epochs 3 2>&1 | tee "$out/throughput.log"
  echo "== The paper's VGG on one GPU in bfloat16, both methods alike (target: DeInfoReg >= 0.9x BP)"
  timeout 300 python3 benchmarks/throughput.py --model vgg --device cuda:0 --stages 2 \
    --batch-sizes 256 --samples 10240 --epochs 3 --precision bf16 2>&1 | tee "$out/throughput_bf16.log"
}

wavefront() {
  echo "== Schedules on one GPU: FLOP, operation and time ratios against BP"
  timeout 300 python3 benchmarks/wavefront.py --device cuda:0 --models dense12w dense12 conv --repeats 2 \
    2>&1 | tee "$out/wavefront.log"
  echo "== The wavefront equals the sequential loop on the GPU (to rounding)"
  timeout 200 python3 -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py -k wavefront 2>&1 | tail -3
}

for section in $sections; do
  "$section"
done
