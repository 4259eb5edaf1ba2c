#!/usr/bin/env bash
# The GPU path end to end on one NVIDIA GPU (issue 13). Run from the repository root:
#   bash tools/gpu_check.sh [OUT_DIR]          (default OUT_DIR: ./gpu_check)
# Steps: install the CUDA 11 libraries; doctor; logits GPU vs CPU for the same weights; 200 AMP training steps of
# mobilenet_v2_100 and mobilenet_v3_large_100 (224 px, batch 128: images/s, peak memory); validate.py on GPU with the
# converted torchvision V2 (83.8% on the shared samples); a short train.py run with dataset_sink_mode; a 1-process
# msrun run with distribute: True. Each step's output goes to OUT_DIR/<step>.log; the figures to OUT_DIR/summary.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu_check}
PY=${PYTHON:-python}
SHARED=${MINDCV_MOBILENET_SHARED:-$(cd .. && pwd)/shared}
mkdir -p "$OUT"
status=0
step() {  # step NAME COMMAND...: run, log, say ok/FAILED
  local name=$1; shift
  if "$@" >"$OUT/$name.log" 2>&1; then echo "ok      $name"; else echo "FAILED  $name (see $OUT/$name.log)"; status=1; fi
}

step install "$PY" -m pip install -q -r requirements.txt -r requirements-gpu.txt
LD_LIBRARY_PATH=$("$PY" -m mindcv_mobilenet.doctor --ld-library-path):${LD_LIBRARY_PATH:-}
export LD_LIBRARY_PATH
step doctor "$PY" -m mindcv_mobilenet.doctor --backends CPU GPU
grep -q "^GPU     works" "$OUT/doctor.log" || { cat "$OUT/doctor.log"; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$OUT/card.txt" 2>&1

step logits "$PY" tools/gpu_checks.py logits --tmp "$OUT"
step train_steps "$PY" tools/gpu_checks.py train --tmp "$OUT" --steps 200 --batch-size 128 --image-size 224 \
  --models mobilenet_v2_100 mobilenet_v3_large_100
step convert "$PY" -m mindcv_mobilenet.convert --model mobilenet_v2_100 \
  --input "$SHARED/weights/mobilenet_v2_1.0_224_torchvision_dequant.npz" --output "$OUT/mnv2_tv.ckpt"
step validate "$PY" validate.py --model mobilenet_v2_100 --device_target GPU --dataset imagenet \
  --data_dir "$SHARED/data/imagenet-samples" --val_split val --ckpt_path "$OUT/mnv2_tv.ckpt" --batch_size 100
step train_sink "$PY" train.py --model mobilenet_v1_025 --device_target GPU --amp_level O2 \
  --dynamic_loss_scale True --loss_scale 1024 --dataset_sink_mode True --num_samples 512 --batch_size 64 \
  --epoch_size 2 --log_interval 4 --ckpt_save_dir "$OUT/train_sink"
step msrun msrun --worker_num=1 --local_worker_num=1 --master_port=8129 --join=True --log_dir="$OUT/msrun_logs" \
  train.py --distribute True --device_target GPU --model mobilenet_v1_025 --num_samples 256 --batch_size 64 \
  --epoch_size 1 --ckpt_save_dir "$OUT/msrun_run"

{
  echo "card: $(cat "$OUT/card.txt")"
  grep -h "^RESULT" "$OUT"/logits.log "$OUT"/train_steps.log 2>/dev/null
  grep -h -i "top-1\|top1" "$OUT/validate.log" 2>/dev/null | tail -2
} > "$OUT/summary.txt"
cat "$OUT/summary.txt"
exit $status
