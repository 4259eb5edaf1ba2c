"""Time ONNX files in ONNX Runtime on this CPU and save their logits, to compare int8 files across CPU kinds.

Needs only numpy and onnxruntime (not this package), so it runs on any machine the files are copied to:

    python tools/onnx_cpu_check.py --batch batch.npy --out results/ float.onnx int8.onnx

prints the CPU's model name and its int8-relevant flags (avx2, avx512f, avx512_vnni, avx_vnni, amx_int8), then each
file's images/s (median of ``--repeats`` runs after one) at each ``--threads``, and writes ``logits_<file>.npy``
(first thread count) and ``onnx_cpu_check.json`` into ``--out``. Compare the logits of two machines with numpy:
an int8 file whose weights cannot saturate (7-bit) gives bit-identical logits with and without VNNI.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def cpu_info() -> dict:
    text = open("/proc/cpuinfo", encoding="utf-8").read()
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return {"cpu": model, "flags": {f: f in flags for f in FLAGS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="ONNX files taking the batch")
    parser.add_argument("--batch", required=True, help=".npy of the input batch (N, C, H, W float32)")
    parser.add_argument("--out", default=".", help="folder for the logits and the JSON summary")
    parser.add_argument("--threads", type=int, nargs="+", default=[2])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    import onnxruntime as ort

    info = cpu_info() | {"onnxruntime": ort.__version__}
    print(json.dumps(info), flush=True)
    batch = np.load(args.batch)
    results: dict = {"info": info, "images_per_s": {}}
    os.makedirs(args.out, exist_ok=True)
    for threads in args.threads:
        for path in args.files:
            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
            session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            feed = {session.get_inputs()[0].name: batch}
            logits = session.run(None, feed)[0]
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                session.run(None, feed)
                times.append(time.perf_counter() - start)
            rate = len(batch) / statistics.median(times)
            name = os.path.splitext(os.path.basename(path))[0]
            results["images_per_s"][f"{name}@{threads}"] = rate
            if threads == args.threads[0]:
                np.save(os.path.join(args.out, f"logits_{name}.npy"), logits)
            print(f"{name}  threads={threads}  {rate:.1f} img/s", flush=True)
    with open(os.path.join(args.out, "onnx_cpu_check.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
