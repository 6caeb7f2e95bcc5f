#!/usr/bin/env bash
# One prepared run on a GPU machine (no internet there): install the wheels that travelled in
# .whl/, then on Last.fm 2K (copied to .kgedata/lastfm-2k):
#   1. the configuration grid of benchmarks/kge.py on the GPU (validation cut, time-boxed);
#   2. epochs/s of the grid's best configuration on the GPU and on 2 CPU cores of the same machine.
# Results go to $OUT (grid.json, speed.jsonl, gpu.md, log). Usage, from the repository root:
#   bash benchmarks/kge_gpu.sh            (OUT defaults to ./kge-gpu-out)
set -uo pipefail
OUT=${OUT:-kge-gpu-out}
mkdir -p "$OUT"
DATA=${KGE_DATA:-.kgedata}
GRID_BUDGET=${KGE_GRID_BUDGET:-240}
exec > >(tee "$OUT/log") 2>&1

. benchmarks/gpu_env.sh || exit 1
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, pykeen; print('torch', torch.__version__, 'pykeen', pykeen.get_version(), 'cuda', torch.cuda.is_available())" || exit 1

t0=$(date +%s)
python3 benchmarks/kge.py grid --datasets "$DATA" --device cuda --threads 8 --budget-s "$GRID_BUDGET" \
  --out "$OUT/grid.json" || echo "grid failed"
echo "grid took $(( $(date +%s) - t0 )) s"

CFG=()
[ -f "$OUT/grid.json" ] && CFG=(--config "$OUT/grid.json")
python3 benchmarks/kge.py speed --datasets "$DATA" --device cuda --threads 8 --epochs 20 "${CFG[@]}" \
  --out "$OUT/speed.jsonl" || echo "gpu speed failed"
taskset -c 0,1 python3 benchmarks/kge.py speed --datasets "$DATA" --device cpu --threads 2 --epochs 2 "${CFG[@]}" \
  --out "$OUT/speed.jsonl" || echo "cpu speed failed"

python3 - "$OUT" <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
rows = [json.loads(x) for x in (out / "speed.jsonl").read_text().splitlines()] if (out / "speed.jsonl").exists() else []
lines = ["Epochs/s of the chosen configuration on one machine (`benchmarks/kge_gpu.sh`, training on the full "
         "training part of the split):", "", "| device | threads | epochs | train s | epochs/s |", "|---|---|---|---|---|"]
for r in rows:
    dev = r["gpu"] or "CPU (taskset 2 cores)"
    lines.append(f"| {dev} | {r['threads']} | {r['epochs']} | {r['train_seconds']} | {r['epochs_per_second']} |")
gpu = [r for r in rows if r["device"] == "cuda"]
cpu = [r for r in rows if r["device"] == "cpu"]
if gpu and cpu and cpu[0]["epochs_per_second"]:
    lines += ["", f"GPU / CPU(2 cores): {gpu[0]['epochs_per_second'] / cpu[0]['epochs_per_second']:.1f}x"]
(out / "gpu.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
