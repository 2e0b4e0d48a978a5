"""The request loop of a PyTorch benchmark reference (see bench/common.ts).

Requests on stdin, one per line: `threads INTRA BLAS` sets ATen's and OpenBLAS's thread counts;
`step NAME` runs one step of workload NAME and answers its wall time in milliseconds.
"""
import ctypes
import sys
import time

import torch


def set_blas_threads(n):
    for lib in ("libblas.so.3", "libopenblas.so.0"):
        try:
            ctypes.CDLL(lib).openblas_set_num_threads(n)
            return
        except (OSError, AttributeError):
            pass


def serve(workloads):
    for line in sys.stdin:
        cmd, *args = line.split()
        if cmd == "threads":
            torch.set_num_threads(int(args[0]))
            set_blas_threads(int(args[1]))
            print("ok", flush=True)
        elif cmd == "step":
            t0 = time.perf_counter()
            workloads[args[0]]()
            print((time.perf_counter() - t0) * 1000, flush=True)
        else:
            print(f"unknown request {cmd}", file=sys.stderr, flush=True)
            sys.exit(2)
