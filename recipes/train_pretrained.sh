#!/usr/bin/env bash
# The recipe of the models shipped in wgimask/pretrained (docs/model-card.md).
#
#   bash recipes/train_pretrained.sh            # all four runs, then ship them
#   JOINT_STEPS=3000 bash recipes/train_pretrained.sh   # longer joint runs
#
# Rerunning resumes every run from its latest checkpoint. The four runs share
# the machine, each with one TensorFlow thread: on few cores, one thread per
# run wastes less than four runs each spreading every op over all cores.
set -euo pipefail
cd "$(dirname "$0")/.."

JOINT_STEPS=${JOINT_STEPS:-1000}
INPAINT_STEPS=${INPAINT_STEPS:-1500}
RUNS=${RUNS:-runs/pretrained}
DATA=${DATA:-data/pretraining}

# Training data: a recipe step, never a run-time one.
if [ ! -d /usr/share/backgrounds/mate/nature ] || [ ! -f /usr/share/backgrounds/umang_by_Abhishek_Mudgal.jpg ]; then
  sudo apt-get install -y mate-backgrounds lomiri-wallpapers-16.04
fi
python recipes/prepare_pretraining_data.py --output_dir="$DATA"

common=(
  --data_dir="$DATA/train" --validation_dir="$DATA/validation"
  --model_size=small --image_size=64 --batch_size=16
  --lr_schedule=cosine --steps_per_epoch=250
)
# Joint runs at learning rate 1e-3 collapsed within 500 steps to one fixed
# blob of known pixels for every image (docs/model-card.md); 5e-4 is used.
pids=()
for run in joint:0.05:5e-4:$JOINT_STEPS joint:0.1:5e-4:$JOINT_STEPS \
           joint:0.2:5e-4:$JOINT_STEPS inpaint:0.1:1e-3:$INPAINT_STEPS; do
  IFS=: read -r mode density rate steps <<<"$run"
  name=$([ "$mode" = joint ] && echo "joint-$density" || echo inpaint)
  mkdir -p "$RUNS/$name"
  TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1 \
    python train.py "${common[@]}" --mode="$mode" --density="$density" \
      --learning_rate="$rate" --epochs=$((steps / 250)) \
      --model_dir="$RUNS/$name" >>"$RUNS/$name/train.log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done

python recipes/ship_pretrained.py --runs="$RUNS"
