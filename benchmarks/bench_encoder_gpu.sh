#!/usr/bin/env bash
# Encoder benchmark on a GPU: the same script in CUDA fp32 and bf16, at 128 and 224 px.
# Usage: bash benchmarks/bench_encoder_gpu.sh   (prints markdown tables; ~2-3 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
for img in 128 224; do
  $PY benchmarks/bench_encoder.py --device cuda --img $img --batch 256 --iters 10 --warmup 3
  $PY benchmarks/bench_encoder.py --device cuda --bf16 --img $img --batch 256 --iters 10 --warmup 3
done
$PY benchmarks/bench_encoder.py --device cuda --bf16 --size base --img 224 --batch 256 --iters 10 --warmup 3
