#!/usr/bin/env bash
# The version-2 training comparison as one prepared call on a lent GPU (the device tool: one
# H100/H200, 16 cores, ~7 minutes), at a scale the 2-core CPU cannot reach: every recipe of
# bench_mix.py with P x K = 32 x 8 for $STEPS steps (validated 8 times), three runs at a time on the one GPU.
#
#   (cd bench/out && tar cf - corpus3 | xz -T2 -6 > ../../.gpu/corpus3.tar.xz)   # build_corpus.py output
#   bash models/recipe/gpu_run.sh          # on the GPU machine; OUT=folder for what comes back
#
# Synthetic artists are drawn there (deterministic, 16 processes) from six training styles.
# Leaves in $OUT: results.tar.gz (every run's results.json, table.md, training log) and the
# best run's fp32 checkpoint (by held-out mAP@R) split into 15 MB parts (best.pt.part-*).
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out} STEPS=${STEPS:-1500} BUDGET=${BUDGET:-330} ARTISTS=${ARTISTS:-3000}
PY=${PY:-python3} DEVICE=${DEVICE:-cuda} WORKERS=${WORKERS:-4} WORK=${WORK:-/tmp/gpu-work} ZOOM=${ZOOM:-2}
GROUPS_=${GROUPS_:-a:ours:mixed,ours:synthetic b:ours:real,triplet:mixed c:paper:mixed,arcface:mixed}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4  # three runs share 16 cores
mkdir -p "$OUT" "$WORK"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
tar xJf .gpu/corpus3.tar.xz -C "$WORK" || exit 1
C=$WORK/corpus3
time $PY models/recipe/synthetic_artists.py --out "$WORK/synthetic" --artists "$ARTISTS" --subjects 12 --workers 16 \
    --bases "$C/emoji/twemoji" "$C/emoji/openmoji" "$C/emoji/fluent-emoji-flat" "$C/icons/Tango" "$C/icons/Paper" "$C/icons/gnome" || exit 1
common=(--real "$C/labels.csv" --synthetic "$WORK/synthetic/labels.csv" --held-out-styles models/recipe/held_out_styles.txt
        --steps "$STEPS" --epoch-steps $(( (STEPS + 7) / 8 )) --p 32 --k 8 --zoom "$ZOOM" --workers "$WORKERS" --device "$DEVICE")
for group in $GROUPS_; do  # out-folder:runs, one process each
    timeout "$BUDGET" $PY bench/bench_mix.py "${common[@]}" --out "$WORK/${group%%:*}" --runs "${group#*:}" \
        > "$WORK/${group%%:*}.log" 2>&1 &
done
wait
tail -n 5 "$WORK"/?.log
best=$($PY - "$WORK" <<'PY'
import json, sys
from pathlib import Path
rows = {}
for results in Path(sys.argv[1]).glob("?/results.json"):
    for run, row in json.loads(results.read_text()).items():
        if ":" in run:
            rows[results.parent / (run.replace(":", "-") + ".pt")] = row["scores"]["mAP@R"]
        print(run, row["scores"], row.get("minutes"), file=sys.stderr)
print(max(rows, key=rows.get) if rows else "")
PY
)
(cd "$WORK" && tar czf "$OUT/results.tar.gz" ?/results.json ?/table.md ?/*.log.jsonl ?.log 2>/dev/null)
[ -n "$best" ] && echo "best: $best" && split -b 15M "$best" "$OUT/best.pt.part-"
ls -la "$OUT"
