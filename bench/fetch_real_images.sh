#!/usr/bin/env bash
# Real illustrations for the benchmarks (never committed): two emoji sets drawn by different
# artists from the npm registry, 64 px PNGs, the same subjects in both sets.
#   bash bench/fetch_real_images.sh [OUT=bench/out/real] [PER_SET=400]
# Twemoji art: CC-BY 4.0 (Twitter); Noto emoji art: Apache 2.0 (Google).
set -euo pipefail
out=${1:-bench/out/real}
per_set=${2:-400}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for set in twitter google; do
  (cd "$tmp" && npm pack --silent "emoji-datasource-$set@16.0.0" >/dev/null)
  mkdir -p "$tmp/$set" "$out/$set"
  tar -xzf "$tmp/emoji-datasource-$set-16.0.0.tgz" -C "$tmp/$set" --wildcards "package/img/$set/64/*.png"
  mapfile -t files < <(find "$tmp/$set/package/img/$set/64" -name '*.png' | sort)
  cp "${files[@]:0:$per_set}" "$out/$set/"
done
echo "$(find "$out" -name '*.png' | wc -l) images in $out"
