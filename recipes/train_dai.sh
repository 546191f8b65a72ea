#!/usr/bin/env bash
# The recipe of the NetE and NetM models for wgimask/pretrained (Dai et
# al.'s networks of the paper's Table 2; docs/model-card.md).
#
#   bash recipes/train_dai.sh                    # 5, 10 and 20 %, then ship
#   DENSITIES="0.1" bash recipes/train_dai.sh    # one density
#
# Every run has one TensorFlow thread and at least the CPU time of the shipped
# inpainting model (about 44 minutes of one thread): NetE 45,000 steps, NetM
# NETM_EPOCHS x 250 steps against the NetE of its density. The NetE runs go side by
# side; each NetM starts when its NetE has finished. Rerunning resumes every
# run from its latest checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."

DENSITIES=${DENSITIES:-"0.05 0.1 0.2"}
NETE_EPOCHS=${NETE_EPOCHS:-90}     # x 500 steps
NETM_EPOCHS=${NETM_EPOCHS:-11}     # x 250 steps
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
  mkdir -p "$RUNS/nete-$density" "$RUNS/netm-$density"
  "${one_thread[@]}" python train.py --mode=nete --density="$density" "${common[@]}" \
    --epochs="$NETE_EPOCHS" --steps_per_epoch=500 --checkpoint_every=500 \
    --model_dir="$RUNS/nete-$density" >>"$RUNS/nete-$density/train.log" 2>&1
  "${one_thread[@]}" python train.py --mode=netm --density="$density" "${common[@]}" \
    --init_from="$RUNS/nete-$density" \
    --epochs="$NETM_EPOCHS" --steps_per_epoch=250 --checkpoint_every=250 \
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
