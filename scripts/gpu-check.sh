#!/usr/bin/env bash
# The GPU check a machine with an NVIDIA GPU runs in one command, from the repository
# root after `make build`:
#
#   scripts/gpu-check.sh [PATH/TO/libonnxruntime.so.1 with the CUDA/TensorRT providers]
#
# It prints, for the demo model on the demo frames: frames/s and latency of each engine
# (adtrd bench), and the image AUROC and decisions of each (adtrd eval), for the int8
# TFLite graph on the CPU (XNNPACK), the same graph on LiteRT's CPU path and on its GPU
# accelerator (Vulkan: which adapter it selects and where the ops run are printed), the ONNX graph on ONNX Runtime's CPU provider, and,
# when the given ONNX Runtime library has them, on its CUDA and TensorRT providers
# (a provider that cannot start is said, and that run refused: on_failure: refuse).
# Without an argument only the CPU runs are made. Nothing is downloaded.
set -uo pipefail
cd "$(dirname "$0")/.."
bin=build/adtrd
[ -x "$bin" ] || { echo "gpu-check: $bin missing: run make build first" >&2; exit 2; }
gpu_lib=${1:-}
arch=$(go env GOARCH 2>/dev/null || uname -m | sed 's/x86_64/amd64/;s/aarch64/arm64/')
cpu_lib=third_party/onnxruntime/linux_$arch/libonnxruntime.so.1
litert_lib=third_party/litert/linux_$arch/libLiteRt.so
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

# eval reads an MVTec layout: the demo frames, good ones under test/good, defects by kind.
data=$work/demo
for f in models/demo/frames/*.png; do
	n=$(basename "$f" .png); kind=${n#*_}
	mkdir -p "$data/test/$kind"
	ln -s "$PWD/$f" "$data/test/$kind/$n.png"
	if [ "$kind" != good ]; then
		mkdir -p "$data/ground_truth/$kind"
		ln -s "$PWD/models/demo/frames/masks/${n}_mask.png" "$data/ground_truth/$kind/${n}_mask.png"
	fi
done

run() { # name, then the model section's YAML lines
	local name=$1; shift
	local cfg=$work/$name.yaml
	{ echo "model:"; printf '  %s\n' "$@"; echo "capture:"; echo "  replay:"; echo "    path: $PWD/models/demo/frames"; echo "    fps: 0"
	  echo "log:"; echo "  level: warn"; echo "http:"; echo "  address: \"\""; } > "$cfg"
	echo "== $name"
	"$bin" check -c "$cfg" || { echo "   (refused: above)"; return; }
	"$bin" bench -c "$cfg" -n 100
	"$bin" eval -c "$cfg" "$data" | head -4
}

run tflite-xnnpack "engine: tflite" "path: $PWD/models/demo/adtr.tflite"
run litert-cpu "engine: litert" "path: $PWD/models/demo/adtr.tflite" "litert:" "  library: $PWD/$litert_lib" "  accelerator: cpu"
# The Vulkan adapter LiteRT's GPU accelerator selects, from its own log: `run` logs
# LiteRT's lines at debug level (check shows warnings only).
printf 'model:\n  engine: litert\n  path: %s\n  litert: {library: %s, accelerator: gpu}\ncapture:\n  replay: {path: %s, fps: 0}\nlog:\n  level: debug\nhttp:\n  address: ""\n' \
	"$PWD/models/demo/adtr.tflite" "$PWD/$litert_lib" "$PWD/models/demo/frames" > "$work/adapter.yaml"
echo "== litert-gpu adapter"
timeout 600 "$bin" run -c "$work/adapter.yaml" 2>&1 | grep -o -E 'Selected adapter: [^"\\]*|placement="[^"]*"' | sort -u | head -3
run litert-gpu "engine: litert" "path: $PWD/models/demo/adtr.tflite" "litert:" "  library: $PWD/$litert_lib" "  accelerator: gpu" "  on_failure: refuse"
run onnxruntime-cpu "engine: onnxruntime" "path: $PWD/models/demo/adtr.onnx" "onnxruntime:" "  library: $PWD/$cpu_lib" "  providers: [cpu]"
if [ -n "$gpu_lib" ]; then
	run onnxruntime-cuda "engine: onnxruntime" "path: $PWD/models/demo/adtr.onnx" "onnxruntime:" "  library: $gpu_lib" "  providers: [cuda]" "  on_failure: refuse"
	run onnxruntime-tensorrt "engine: onnxruntime" "path: $PWD/models/demo/adtr.onnx" "onnxruntime:" "  library: $gpu_lib" "  providers: [tensorrt]" "  on_failure: refuse" "  tensorrt: {fp16: true, cache: $work/trt}"
fi
