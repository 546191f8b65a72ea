#!/usr/bin/env bash
# The recipe of the NetE and NetM models for wgimask/pretrained (Dai et
# al.'s networks of the paper's Table 2; docs/model-card.md).
#
#   bash recipes/train_dai.sh                    # 5, 10 and 20 %, then ship
#   DENSITIES="0.1" bash recipes/train_dai.sh    # one density
#
# Every run has one TensorFlow thread. NetE: 48,000 steps at 5 and 10 %,
# 45,000 at 20 % (43-47 minutes of CPU each); NetM: 2,000 / 2,000 /
# 1,000 steps against the NetE of its density (the shipped runs were
# stopped there: their validation fell from step 250 on, and the best
# weights, step 250, are what ships; docs/model-card.md). The NetE runs go
# side by side; each NetM starts when its NetE has finished. Rerunning
# resumes every run from its latest checkpoint. NETE_EPOCHS and NETM_EPOCHS
# (x 500 and x 250 steps) override the per-density counts.
set -euo pipefail
cd "$(dirname "$0")/.."

DENSITIES=${DENSITIES:-"0.05 0.1 0.2"}
declare -A NETE_DEFAULT=([0.05]=96 [0.1]=96 [0.2]=90)
declare -A NETM_DEFAULT=([0.05]=8 [0.1]=8 [0.2]=4)
RUNS=${RUNS:-runs/dai-pretrained}
DATA=${DATA:-data/pretraining}

if [ ! -d "$DATA/train" ]; then
  echo "run recipes/train_pretrained.sh's data step first (recipes/prepare_pretraining_data.py)" >&2
  exit 1
fi
common=(
  --data_dir="$DATA/train" --validation_dir="$DATA/validation" --validation_crops=tiles
  --model_size=small --batch_size=32
)
one_thread=(env TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1 nice -n 5)

density_runs() {
  local density=$1
  local nete_epochs=${NETE_EPOCHS:-${NETE_DEFAULT[$density]:-90}}
  local netm_epochs=${NETM_EPOCHS:-${NETM_DEFAULT[$density]:-8}}
  mkdir -p "$RUNS/nete-$density" "$RUNS/netm-$density"
  "${one_thread[@]}" python train.py --mode=nete --density="$density" "${common[@]}" \
    --epochs="$nete_epochs" --steps_per_epoch=500 --checkpoint_every=500 \
    --model_dir="$RUNS/nete-$density" >>"$RUNS/nete-$density/train.log" 2>&1
  "${one_thread[@]}" python train.py --mode=netm --density="$density" "${common[@]}" \
    --init_from="$RUNS/nete-$density" \
    --epochs="$netm_epochs" --steps_per_epoch=250 --checkpoint_every=250 \
    --model_dir="$RUNS/netm-$density" >>"$RUNS/netm-$density/train.log" 2>&1
}

pids=()
for density in $DENSITIES; do
  density_runs "$density" &
  pids+=($!)
done
# Every run finishes (or fails) before anything is shipped.
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
if [ "$failed" != 0 ]; then
  echo "a run failed (see $RUNS/*/train.log); nothing was shipped" >&2
  exit 1
fi

if [ -z "${NO_SHIP:-}" ]; then
  names=()
  for density in $DENSITIES; do names+=("nete-$density" "netm-$density"); done
  python recipes/ship_pretrained.py --runs="$RUNS" --names="$(IFS=,; echo "${names[*]}")"
fi
