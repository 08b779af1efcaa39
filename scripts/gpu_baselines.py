#!/usr/bin/env python3
"""Library baselines for the w4a8 CUDA kernels, and the merge of both into one report.

  gpu_baselines.py bench [--max-seconds S] [--quick]   JSON lines on stdout:
      cuBLAS bf16 (torch.matmul, x [m,k] @ W^T) and FP8 E4M3 (torch._scaled_mm, row-wise scales, falling
      back to tensor-wise, with bf16 output) for the shapes of native/bench/bench_cuda.cu, timed the same way:
      > 200 MB of weight copies in rotation, warm-up, batches of ~2 ms timed with CUDA events, median.
  gpu_baselines.py merge --ours F --baselines F --out DIR [--device NAME] [--driver V]
      results.json and results.md (a markdown table) in DIR; prints the table.
"""
import argparse
import json
import math
import os
import sys
import time

SHAPES = [(4096, 4096), (8192, 8192), (28672, 8192), (8192, 28672)]  # n x k
MS = [1, 4, 16, 64, 256, 1024, 4096]
ROTATE_BYTES = 200 << 20


def time_it(torch, launch):
    """Median and min of batch means (microseconds), batches of ~2 ms, after warm-up."""
    counter = [0]

    def run():
        launch(counter[0])
        counter[0] += 1

    for _ in range(3):
        run()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    run()
    end.record()
    end.synchronize()
    probe_ms = max(start.elapsed_time(end), 1e-3)
    reps = max(1, min(500, int(2.0 / probe_ms)))
    means = []
    for _ in range(7):
        start.record()
        for _ in range(reps):
            run()
        end.record()
        end.synchronize()
        means.append(1000.0 * start.elapsed_time(end) / reps)
    means.sort()
    return means[len(means) // 2], means[0], reps


def emit(kernel, n, k, m, us, us_min, reps, copies, bytes_moved, note=""):
    flops = 2.0 * m * n * k
    line = {"source": "torch", "kernel": kernel, "n": n, "k": k, "m": m, "us": round(us, 3), "us_min": round(us_min, 3),
            "reps": reps, "batches": 7, "weight_copies": copies, "gbps": round(bytes_moved / (us * 1e3), 1),
            "tflops": round(flops / (us * 1e6), 2)}
    if note:
        line["note"] = note
    print(json.dumps(line), flush=True)


def bench(args):
    import torch  # only on the GPU machine

    if not torch.cuda.is_available():
        print("gpu_baselines: torch sees no CUDA device", file=sys.stderr)
        return 77
    dev = torch.device("cuda")
    print(f"gpu_baselines: torch {torch.__version__}, {torch.cuda.get_device_name(0)}", file=sys.stderr)
    t0 = time.time()
    gen = torch.Generator(device=dev)
    gen.manual_seed(1234)
    fp8 = torch.float8_e4m3fn
    for n, k in SHAPES:
        if args.quick and n != 4096:
            continue
        max_m = 256 if args.quick else 4096
        copies_bf16 = max(2, min(32, math.ceil(ROTATE_BYTES / (n * k * 2))))
        copies_fp8 = max(2, min(32, math.ceil(ROTATE_BYTES / (n * k))))
        w_bf16 = [torch.empty(n, k, device=dev, dtype=torch.bfloat16).uniform_(-0.05, 0.05, generator=gen)
                  for _ in range(copies_bf16)]
        w_fp8 = [(torch.empty(n, k, device=dev).uniform_(-400, 400, generator=gen)).to(fp8) for _ in range(copies_fp8)]
        scale_w_row = torch.rand(1, n, device=dev, generator=gen) * 1e-3 + 1e-4
        scale_w_t = torch.tensor(1e-3, device=dev)
        x_all = torch.empty(max_m, k, device=dev, dtype=torch.bfloat16).uniform_(-1, 1, generator=gen)
        x8_all = (x_all.float() * 400).to(fp8)
        for m in MS:
            if m > max_m:
                continue
            if time.time() - t0 > args.max_seconds:
                print(f"gpu_baselines: time budget of {args.max_seconds:.0f} s spent; skipping n={n} k={k} m>={m}",
                      file=sys.stderr)
                break
            x = x_all[:m]
            us, us_min, reps = time_it(torch, lambda i: torch.matmul(x, w_bf16[i % copies_bf16].t()))
            emit("cublas_bf16", n, k, m, us, us_min, reps, copies_bf16, 2.0 * (n * k + m * k + m * n))

            x8 = x8_all[:m]
            scale_x_row = torch.rand(m, 1, device=dev, generator=gen) * 1e-2 + 1e-3
            attempts = [("fp8_rowwise", x8, scale_x_row, scale_w_row, ""),
                        ("fp8_tensorwise", x8, scale_w_t, scale_w_t, "")]
            if m % 16:
                mp = (m + 15) // 16 * 16
                xp = x8_all[:mp]
                attempts.append(("fp8_tensorwise", xp, scale_w_t, scale_w_t, f"m padded to {mp}"))
            errors = []
            for name, a, sa, sb, note in attempts:
                try:
                    def run(i, a=a, sa=sa, sb=sb):
                        return torch._scaled_mm(a, w_fp8[i % copies_fp8].t(), scale_a=sa, scale_b=sb,
                                                out_dtype=torch.bfloat16)
                    run(0)
                    torch.cuda.synchronize()
                    us, us_min, reps = time_it(torch, run)
                    emit(name, n, k, m, us, us_min, reps, copies_fp8, n * k + m * k + 2.0 * m * n, note)
                    break
                except Exception as e:  # an unsupported scaling mode or shape: try the next one
                    errors.append(f"{name}: {str(e).splitlines()[0][:160]}")
            else:
                print(json.dumps({"source": "torch", "kernel": "fp8", "n": n, "k": k, "m": m, "error": errors}),
                      flush=True)
        del w_bf16, w_fp8, x_all, x8_all
        torch.cuda.empty_cache()
    print(f"gpu_baselines: done in {time.time() - t0:.1f} s", file=sys.stderr)
    return 0


def read_jsonl(path):
    rows = []
    if path and os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        pass
    return rows


def fmt(v, digits=1):
    return "-" if v is None else f"{v:.{digits}f}"


def merge(args):
    ours, base = read_jsonl(args.ours), read_jsonl(args.baselines)
    by, quant = {}, {}
    for r in ours + base:
        if "us" not in r:
            continue
        if r["kernel"] == "act_quant_int8":  # depends on (k, m) only
            quant[(r["k"], r["m"])] = r["us"]
            continue
        key = (r["n"], r["k"], r["m"])
        kernel = r["kernel"]
        if kernel.startswith("fp8"):
            kernel = "fp8"
        by.setdefault(key, {})[kernel] = r
    rows = []
    for n, k in SHAPES:
        for m in MS:
            e = by.get((n, k, m))
            if not e:
                continue
            get = lambda name: e[name]["us"] if name in e else None  # noqa: E731
            w4a8, w4a16, bf16, f8 = get("w4a8_gemm"), get("w4a16_gemv"), get("cublas_bf16"), get("fp8")
            best = min([v for v in (w4a8, w4a16) if v is not None], default=None)
            row = {"n": n, "k": k, "m": m, "w4a8_us": w4a8, "w4a16_us": w4a16, "cublas_bf16_us": bf16, "fp8_us": f8,
                   "fp8_mode": e["fp8"]["kernel"] + (" (" + e["fp8"]["note"] + ")" if e["fp8"].get("note") else "")
                   if "fp8" in e else None,
                   "act_quant_int8_us": quant.get((k, m)),
                   "speedup_vs_bf16": bf16 / best if bf16 and best else None,
                   "speedup_vs_fp8": f8 / best if f8 and best else None,
                   "w4a8_gbps": e["w4a8_gemm"]["gbps"] if "w4a8_gemm" in e else None,
                   "w4a8_tflops": e["w4a8_gemm"]["tflops"] if "w4a8_gemm" in e else None,
                   "w4a16_gbps": e["w4a16_gemv"]["gbps"] if "w4a16_gemv" in e else None}
            rows.append(row)
    os.makedirs(args.out, exist_ok=True)
    report = {"device": args.device, "driver": args.driver, "rows": rows, "ours": ours, "baselines": base}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(report, f, indent=1)
    lines = [f"# w4a8 CUDA kernels vs cuBLAS ({args.device or 'unknown GPU'}, driver {args.driver or '?'})", "",
             "Times are medians in microseconds; W4A8 is the GEMM on int8 activations (the per-token int8",
             "quantization of bf16 activations is timed apart); speedups = baseline / best of ours (W4A8, or W4A16 for M <= 8);",
             "W4A8 GB/s counts int4 weights + scales + int8 activations + bf16 output once; W4A8 TOPS = 2MNK / time.", "",
             "| N x K | M | W4A8 us | W4A16 us | act quant us | cuBLAS bf16 us | FP8 us | x vs bf16 | x vs FP8 | W4A8 GB/s | W4A8 TOPS | W4A16 GB/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['n']}x{r['k']} | {r['m']} | {fmt(r['w4a8_us'])} | {fmt(r['w4a16_us'])} | "
                     f"{fmt(r['act_quant_int8_us'])} | "
                     f"{fmt(r['cublas_bf16_us'])} | {fmt(r['fp8_us'])} | {fmt(r['speedup_vs_bf16'], 2)} | "
                     f"{fmt(r['speedup_vs_fp8'], 2)} | {fmt(r['w4a8_gbps'], 0)} | {fmt(r['w4a8_tflops'])} | "
                     f"{fmt(r['w4a16_gbps'], 0)} |")
    modes = sorted({r["fp8_mode"] for r in rows if r["fp8_mode"]})
    if modes:
        lines += ["", "FP8 baseline modes: " + "; ".join(modes)]
    missing = [f"{r['n']}x{r['k']} m={r['m']}" for r in rows if r["w4a8_us"] is None]
    if missing:
        lines += ["", "No W4A8 timing for: " + ", ".join(missing)]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(text)
    print(text)
    return 0 if rows else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench")
    b.add_argument("--max-seconds", type=float, default=120)
    b.add_argument("--quick", action="store_true")
    mg = sub.add_parser("merge")
    mg.add_argument("--ours", required=True)
    mg.add_argument("--baselines", required=True)
    mg.add_argument("--out", required=True)
    mg.add_argument("--device", default="")
    mg.add_argument("--driver", default="")
    args = p.parse_args()
    return bench(args) if args.cmd == "bench" else merge(args)


if __name__ == "__main__":
    sys.exit(main())
