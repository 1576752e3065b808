#!/usr/bin/env bash
# Regenerates docs/RESULTS.md and its figures (docs/img/*.png) from runs on this machine.
#
# For each dataset (default: blood organa mnist):
#   1. full-dataset DeiT features in data/features/<name>.feat (extracted from
#      ../shared/assets/<name>.npz with `blindtuner extract` if missing; needs
#      scripts/setup-ort.sh, run here when the ONNX Runtime library is missing);
#   2. the plaintext mirror and exact on the whole train split (`--mirror-only`, fast):
#      data/runs/<d>-full-mirror.json;
#   3. the encrypted run (CKKS n14_train, hospital refresh in process) with the mirror and exact
#      beside it, checkpointed in data/runs/<d>-encrypted.ckpt/ after every step, so rerunning
#      this script resumes it: data/runs/<d>-encrypted.json;
# then `blindtuner report` draws the figures and the table, and docs/RESULTS.md is made from
# scripts/RESULTS.md.in. Every figure in it comes from the run outputs.
#
# Usage: scripts/results.sh [--quick] [--no-encrypted] [--datasets "blood mnist"]
#                           [--epochs E] [--enc-epochs E] [--enc-steps S] [--enc-batch-chunks K]
#                           [--threads T]
# Environment (same meaning as the options): RESULTS_DATASETS, RESULTS_EPOCHS (mirror runs,
# default 30, patience 3), RESULTS_ENC_EPOCHS (default 1;
# RESULTS_ENC_EPOCHS_<dataset>, e.g. RESULTS_ENC_EPOCHS_blood=3, for one dataset: a finished
# run is reused only with the settings it was made with), RESULTS_ENC_STEPS (a cap, default
# none), RESULTS_ENC_BATCH_CHUNKS (chunks per encrypted mini-batch, default 8: 256 samples at
# n14_train, one softmax pack; the step is then about 1.6–2.3 s, three times the samples per
# second of 2 chunks), RESULTS_THREADS (default: all cores), RESULTS_NO_ENCRYPTED=1, RESULTS_QUICK=1,
# BLINDTUNER (a binary to use; default: `cargo build --release -p tui` and its blindtuner),
# RESULTS_RUNS (default data/runs), RESULTS_DOC (default docs/RESULTS.md),
# RESULTS_IMG (default docs/img).
#
# Duration on 2 cores (measured 2026-11-22): feature extraction 55–80 images/s (BloodMNIST
# 17k images ≈ 5 min, OrganAMNIST 59k ≈ 15 min, MNIST 70k ≈ 18 min; once), mirror runs under
# a minute each, one encrypted epoch at n14_train, batch 256, 1.6–2.3 s a step on a quiet
# machine (session 4): BloodMNIST 47 steps ≈ 1.3 min, OrganAMNIST 136 ≈ 6 min, MNIST 211 ≈ 8 min.
#
# --quick: the embedded fixtures (no extraction), the INSECURE N = 2^11 test preset and a few
# steps, into data/runs-quick, docs and figures into data/quick/ unless RESULTS_DOC /
# RESULTS_IMG say otherwise: checks the machinery in about a minute, proves nothing.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

datasets="${RESULTS_DATASETS:-blood organa mnist}"
epochs="${RESULTS_EPOCHS:-30}"
enc_epochs="${RESULTS_ENC_EPOCHS:-1}"
enc_steps="${RESULTS_ENC_STEPS:-}"
enc_batch="${RESULTS_ENC_BATCH_CHUNKS:-8}"
threads="${RESULTS_THREADS:-}"
no_enc="${RESULTS_NO_ENCRYPTED:-0}"
quick="${RESULTS_QUICK:-0}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) quick=1 ;;
        --no-encrypted) no_enc=1 ;;
        --datasets) datasets="$2"; shift ;;
        --epochs) epochs="$2"; shift ;;
        --enc-epochs) enc_epochs="$2"; shift ;;
        --enc-steps) enc_steps="$2"; shift ;;
        --enc-batch-chunks) enc_batch="$2"; shift ;;
        --threads) threads="$2"; shift ;;
        -h|--help) sed -n '2,37p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "results.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if [[ -n "${BLINDTUNER:-}" ]]; then
    bin="$BLINDTUNER"
else
    # Build (a no-op when up to date), so that the figures come from the checked-out code.
    cargo build --release -p tui
    bin="${CARGO_TARGET_DIR:-target}/release/blindtuner"
fi
if [[ "$quick" == 1 ]]; then
    runs="${RESULTS_RUNS:-data/runs-quick}"
    doc="${RESULTS_DOC:-data/quick/RESULTS.md}"
    img="${RESULTS_IMG:-data/quick/img}"
else
    runs="${RESULTS_RUNS:-data/runs}"
    doc="${RESULTS_DOC:-docs/RESULTS.md}"
    img="${RESULTS_IMG:-docs/img}"
fi
mkdir -p "$runs" "$img" "$(dirname "$doc")"
[[ "$quick" == 1 ]] || mkdir -p data/features
thread_args=()
[[ -n "$threads" ]] && thread_args=(--threads "$threads")

# The features file and the .npz it comes from, per dataset.
feat_name() {
    case "$1" in
        blood) echo bloodmnist ;;
        organa) echo organamnist ;;
        mnist) echo mnist ;;
        *) echo "$1" ;;
    esac
}

histories=()
skipped=()
for d in $datasets; do
    if [[ "$quick" == 1 ]]; then
        src=(--dataset "$d" --insecure-test-preset)
        mirror_plan=(--epochs 2 --batch-chunks 1)
        enc_plan=(--steps 3 --batch-chunks 1)
    else
        name="$(feat_name "$d")"
        feat="data/features/$name.feat"
        npz="../shared/assets/$name.npz"
        if [[ ! -f "$feat" ]]; then
            if [[ ! -f "$npz" ]]; then
                echo "== $d: skipped: neither $feat nor $npz exists"
                skipped+=("$d")
                continue
            fi
            echo "== $d: extracting full-dataset features from $npz into $feat"
            bash scripts/setup-ort.sh
            "$bin" extract --npz "$npz" --splits train,val,test --f16 --batch 64 --out "$feat"
        fi
        src=(--features "$feat")
        mirror_plan=(--epochs "$epochs" --patience 3)
        per_dataset="RESULTS_ENC_EPOCHS_$d"
        enc_plan=(--epochs "${!per_dataset:-$enc_epochs}" --batch-chunks "$enc_batch")
        [[ -n "$enc_steps" ]] && enc_plan+=(--max-steps "$enc_steps")
    fi
    echo "== $d: plaintext mirror and exact (--mirror-only)"
    "$bin" bench train "${src[@]}" "${mirror_plan[@]}" --mirror-only "${thread_args[@]}" \
        --history "$runs/$d-full-mirror.json"
    histories+=("$runs/$d-full-mirror.json")
    if [[ "$no_enc" != 1 ]]; then
        echo "== $d: encrypted (hospital refresh in process), checkpointed in $runs/$d-encrypted.ckpt"
        "$bin" bench train "${src[@]}" "${enc_plan[@]}" "${thread_args[@]}" \
            --checkpoint "$runs/$d-encrypted.ckpt" --history "$runs/$d-encrypted.json"
        histories+=("$runs/$d-encrypted.json")
    fi
done
if [[ ${#histories[@]} -eq 0 ]]; then
    echo "results.sh: no run (skipped: ${skipped[*]})" >&2
    exit 1
fi

echo "== figures and table"
table="$(mktemp)"
trap 'rm -f "$table"' EXIT
prefix="$(python3 -c 'import os,sys; print(os.path.relpath(sys.argv[1], os.path.dirname(os.path.abspath(sys.argv[2]))))' "$(cd "$img" && pwd)" "$doc")/"
"$bin" report "${histories[@]}" --out-dir "$img" --markdown "$table" --img-prefix "$prefix"
python3 - "$root/scripts/RESULTS.md.in" "$table" "$doc" "${skipped[*]:-}" <<'PY'
import datetime, sys
template, table, out, skipped = sys.argv[1:5]
text = open(template).read()
note = ""
if skipped.strip():
    note = "\nNot run here (no features file and no .npz): " + ", ".join(skipped.split()) + ".\n"
text = text.replace("@@RESULTS@@", open(table).read().rstrip() + "\n" + note)
text = text.replace("@@DATE@@", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
tmp = out + ".tmp"
open(tmp, "w").write(text)
import os
os.replace(tmp, out)
PY
echo "== wrote $doc and $img/"
