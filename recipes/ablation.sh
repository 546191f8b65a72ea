#!/usr/bin/env bash
# Ablation of the learned-mask options (docs/learned-masks.md, "Ablation"):
# 64 px, D = 10 %, small networks, batch 16, cosine schedule, learning rate
# 5e-4 (the shipped recipe's rate, recipes/train_pretrained.sh), the same number of
# steps for every row.
#
#   bash recipes/ablation.sh                 # all rows, PARALLEL at a time
#   STEPS=300 PARALLEL=2 RUNS=runs/ablation-300 bash recipes/ablation.sh
#   ROWS="recipe best" bash recipes/ablation.sh
#   python recipes/ablation_table.py --runs=runs/ablation   # the table + curve
#
# Rerunning resumes every unfinished run from its latest checkpoint (a
# finished run, one with an export, is skipped). Each run logs to
# runs/ablation/<row>/train.log and uses one TensorFlow thread.
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=${STEPS:-200}
EVALS=${EVALS:-10}   # validations per run (the points of the PSNR curve)
PARALLEL=${PARALLEL:-3}
RUNS=${RUNS:-runs/ablation}
DATA=${DATA:-data/pretraining}
PRETRAINED_G=wgimask/pretrained/inpaint
ROWS=${ROWS:-"recipe warm_start diffusion prefill prior dither best mask_only"}

if [ ! -d "$DATA/train" ] || [ ! -d "$DATA/validation" ]; then
  echo "ablation.sh: no $DATA/{train,validation}; run recipes/prepare_pretraining_data.py" >&2
  exit 1
fi
if [ $((STEPS % EVALS)) -ne 0 ]; then
  echo "ablation.sh: STEPS ($STEPS) must be a multiple of EVALS ($EVALS)" >&2
  exit 1
fi

common=(
  --data_dir="$DATA/train" --validation_dir="$DATA/validation"
  --model_size=small --image_size=64 --batch_size=16 --density=0.1
  --lr_schedule=cosine --learning_rate=5e-4
  --steps_per_epoch=$((STEPS / EVALS)) --epochs="$EVALS" --checkpoint_every=25
)

row_flags() {
  case "$1" in
    recipe) echo "" ;;
    # Only g ships in the package (its inpainter); d starts from scratch.
    warm_start) echo "--init_from=generator=$PRETRAINED_G" ;;
    diffusion) echo "--mask_operator=diffusion" ;;
    prefill) echo "--prefill=diffusion" ;;
    prior) echo "--mask_prior=analytic" ;;
    dither) echo "--binarisation=ordered_dither" ;;
    # Prefill and the shipped g do not combine (g's input channels differ).
    best) echo "--mask_operator=diffusion --prefill=diffusion --mask_prior=analytic --binarisation=ordered_dither" ;;
    mask_only) echo "--mode=mask --mask_operator=diffusion --mask_prior=analytic --binarisation=ordered_dither" ;;
    *) echo "ablation.sh: unknown row $1" >&2; return 1 ;;
  esac
}

run_row() {
  local row=$1 dir="$RUNS/$1"
  local extra
  extra=$(row_flags "$row")
  if [ -d "$dir/export" ]; then
    echo "$row: finished (export exists)"
    return 0
  fi
  mkdir -p "$dir"
  echo "$row: python train.py ${common[*]} $extra --model_dir=$dir" | tee -a "$dir/command.txt"
  # shellcheck disable=SC2086 (word splitting of $extra is wanted)
  TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1 \
    nice -n 5 python train.py "${common[@]}" $extra --model_dir="$dir" \
    >>"$dir/train.log" 2>&1 || echo "$row: train.py failed, see $dir/train.log"
}

running=0
for row in $ROWS; do
  row_flags "$row" >/dev/null
  run_row "$row" &
  running=$((running + 1))
  if [ "$running" -ge "$PARALLEL" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait
echo "ablation.sh: done"
