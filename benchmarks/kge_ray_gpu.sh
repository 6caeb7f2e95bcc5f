#!/usr/bin/env bash
# One prepared run on a GPU machine (no internet there): kge trained data-parallel on Ray Train
# with NCCL, Last.fm 2K copied to .kgedata/lastfm-2k (KGE_DATA), wheels in .whl/ when the machine
# lacks torch/pykeen/ray. Prints epochs/s of the shipped kge configuration for
#   1. PyKEEN in one process on CUDA (reference),
#   2. 1 Ray worker on 1 GPU,
#   3. 2 Ray workers on 2 GPUs (only when the machine has more than one),
# each with KGE_EPOCHS epochs (default 8), every step under its own timeout so the whole run
# stays within about 8 minutes. Results: $OUT/runs.jsonl, $OUT/gpu.md, $OUT/log.
#   bash benchmarks/kge_ray_gpu.sh            (OUT defaults to ./kge-ray-gpu-out)
set -uo pipefail
OUT=${OUT:-kge-ray-gpu-out}
mkdir -p "$OUT"
DATA=${KGE_DATA:-.kgedata}
EPOCHS=${KGE_EPOCHS:-8}
exec > >(tee "$OUT/log") 2>&1
start=$(date +%s)

. benchmarks/gpu_env.sh || exit 1
export PYTHONUNBUFFERED=1 RAY_USAGE_STATS_ENABLED=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, pykeen; print('torch', torch.__version__, 'pykeen', pykeen.get_version(), 'cuda', torch.cuda.is_available(), 'gpus', torch.cuda.device_count())" \
  || { echo "torch and pykeen are needed (put their wheels in .whl/)"; exit 1; }
GPUS=$(python3 -c "import torch; print(torch.cuda.device_count())")
[ "$GPUS" -ge 1 ] || { echo "no CUDA device"; exit 1; }

RUNS=(local-gpu)
if python3 -c "import ray.train.torch; print('ray', ray.__version__)"; then
  RUNS+=(ray-1-gpu)
  [ "$GPUS" -ge 2 ] && RUNS+=(ray-2-gpu)
else
  echo "ray[train] is not installed here (its wheel in .whl/ would add it): only the single-process CUDA run"
fi
for run in "${RUNS[@]}"; do
  timeout 200 python3 benchmarks/kge_ray.py --datasets "$DATA" --runs "$run" --epochs "$EPOCHS" --threads 8 \
    --out "$OUT/runs.jsonl" || echo "$run failed or timed out"
  echo "elapsed $(( $(date +%s) - start )) s"
done

python3 - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
path = out / "runs.jsonl"
rows = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
lines = ["kge on GPUs (`benchmarks/kge_ray_gpu.sh`): epochs/s of the training loop, NDCG@10 on the kge split", "",
         "| run | workers | device | epochs | epochs/s | train s | wall s | NDCG@10 | replicas differ by |",
         "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
for r in rows:
    lines.append(f"| {r['run']} | {r['workers']} | {r['device']} | {r['epochs']} | {r['epochs_per_second']} | "
                 f"{r['train_seconds']} | {r['wall_seconds']} | {r['ndcg@10']:.4f} | {r['replica_max_abs_diff']} |")
(out / "gpu.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
