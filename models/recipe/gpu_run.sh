#!/usr/bin/env bash
# CNN training runs of bench_mix.py as one prepared call on a lent GPU (the device tool: one
# H100/H200, 16 cores, one command of at most 10 minutes), at a scale the 2-core CPU cannot
# reach: P x K = 32 x 8 for $STEPS steps, validated 8 times, up to three runs at a time.
#
#   (cd bench/out && tar cf - corpus3 | xz -T2 -6 > ../../.gpu/corpus3.tar.xz)   # build_corpus.py output
#   bash models/recipe/gpu_run.sh          # on the GPU machine; OUT=folder for what comes back
#
# CORPUS: the archived corpus folder's name (.gpu/$CORPUS.tar.xz holds $CORPUS/labels.csv ...), e.g.
# corpus4 for the training styles with the icon sets. SIDE: the pixels the corpus was rendered at
# (build_corpus.py --side); the synthetic artists are drawn and the CNN trained at that size.
# .gpu/ is git-ignored: pass it to the device with carry [".gpu"]; what is carried (the tree
# included) must stay under 64 MiB: corpus4 at 128 px is 39 MiB as .tar.xz (2026-11-28).
#
# GROUPS_: ';'-separated groups "NAME RUNS [bench_mix options]", one process each (RUNS as in
# bench_mix --runs). VALIDATE: a styles file to choose checkpoints on, left out of training
# (bench_mix --validate-styles; empty: the held-out styles, as the first GPU run did).
# Synthetic artists are drawn there (deterministic, 16 processes) from six training styles.
# Leaves in $OUT: results.tar.gz (every group's results.json, table.md, logs) and the best
# plain run and the best --complement run by validation mAP@R (the two validate different
# vectors: mu alone, or mu beside the statistics), as fp16 encoder-only checkpoints in 15 MB
# parts (GROUP-RUN.pt.part-*: what comes back is at most 64 MB).
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out} STEPS=${STEPS:-1200} BUDGET=${BUDGET:-330} ARTISTS=${ARTISTS:-3000}
PY=${PY:-python3} DEVICE=${DEVICE:-cuda} WORKERS=${WORKERS:-4} WORK=${WORK:-/tmp/gpu-work} ZOOM=${ZOOM:-1}
CORPUS=${CORPUS:-corpus3} SIDE=${SIDE:-128}
VALIDATE=${VALIDATE-models/recipe/validation_styles.txt} HELD_OUT=${HELD_OUT:-models/recipe/held_out_styles.txt}
# --complement needs a model fused without a learned head (`stylesearch train fuse ... --head-epochs 0`;
# the bundled model has one since version 8), e.g. "b paper:mixed --complement fused-linear.pt"
GROUPS_=${GROUPS_:-"a paper:mixed"}
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4  # three runs share 16 cores
mkdir -p "$OUT" "$WORK"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
tar xJf ".gpu/$CORPUS.tar.xz" -C "$WORK" || exit 1
C=$WORK/$CORPUS
time $PY models/recipe/synthetic_artists.py --out "$WORK/synthetic" --artists "$ARTISTS" --subjects 12 --workers 16 --side "$SIDE" \
    --bases "$C/emoji/twemoji" "$C/emoji/openmoji" "$C/emoji/fluent-emoji-flat" "$C/icons/Tango" "$C/icons/Paper" "$C/icons/gnome" || exit 1
common=(--real "$C/labels.csv" --synthetic "$WORK/synthetic/labels.csv" --held-out-styles "$HELD_OUT"
        --steps "$STEPS" --epoch-steps $(( (STEPS + 7) / 8 )) --p 32 --k 8 --zoom "$ZOOM" --input-size "$SIDE" --workers "$WORKERS" --device "$DEVICE")
[ -n "$VALIDATE" ] && common+=(--validate-styles "$VALIDATE")
IFS=';' read -ra groups <<< "$GROUPS_"
names=()
for group in "${groups[@]}"; do
    read -ra words <<< "$group"  # NAME RUNS [options]
    [ ${#words[@]} -eq 0 ] && continue
    [ ${#words[@]} -ge 2 ] || { echo "GROUPS_: '$group' is not 'NAME RUNS [options]'" >&2; exit 1; }
    names+=("${words[0]}")
    echo "${words[*]:2}" > "$WORK/${words[0]}.options"
    { timeout "$BUDGET" $PY bench/bench_mix.py "${common[@]}" --out "$WORK/${words[0]}" --runs "${words[1]}" "${words[@]:2}" \
        > "$WORK/${words[0]}.log" 2>&1; echo $? > "$WORK/${words[0]}.rc"; } &
done
wait
for name in "${names[@]}"; do
    tail -n 5 "$WORK/$name.log"
    rc=$(cat "$WORK/$name.rc")
    [ "$rc" = 124 ] && echo "group $name: stopped by BUDGET ($BUDGET s); only checkpoints saved before then come back" >&2
    [ "$rc" != 0 ] && [ "$rc" != 124 ] && echo "group $name: bench_mix exited with status $rc (see its log above)" >&2
done
(cd "$WORK" && tar czf "$OUT/results.tar.gz" $(for n in "${names[@]}"; do echo "$n/results.json $n/table.md $n/*.log.jsonl $n.log $n.options"; done) 2>/dev/null)
$PY - "$WORK" "$OUT" "${names[@]}" <<'PY'
import json, subprocess, sys
from pathlib import Path
sys.path.insert(0, ".")
from stylesearch.model.checkpoint import load_encoder, save_encoder
work, out, names = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
best = {}  # kind -> (validation mAP@R, checkpoint)
for log in (log for name in names for log in (work / name).glob("*.pt.log.jsonl")):
    scores = [r["mAP@R"] for r in map(json.loads, log.read_text().splitlines()) if r.get("event") == "epoch" and "mAP@R" in r]
    model = log.with_name(log.name.removesuffix(".log.jsonl"))
    kind = "complement" if "--complement" in (work / f"{log.parent.name}.options").read_text() else "plain"
    print(model, kind, "validation mAP@R", scores, file=sys.stderr)
    if scores and model.exists() and max(scores) > best.get(kind, (-1.0, None))[0]:
        best[kind] = (max(scores), model)
for kind, (value, model) in best.items():
    encoder, info = load_encoder(model)  # mu only, fp16: what evaluation and `train fuse` need
    target = out / f"{model.parent.name}-{model.name}"
    save_encoder(target, encoder, name=info.name, version=info.version, trained=True, data=info.data, half=True)
    subprocess.run(["split", "-b", "15M", str(target), f"{target}.part-"], check=True)
    target.unlink()
    print(f"kept {kind}: {model} (validation mAP@R {value})", file=sys.stderr)
PY
ls -la "$OUT"
