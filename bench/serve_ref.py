"""The request loop of a PyTorch benchmark reference (see bench/common.ts).

Requests on stdin, one per line: `threads INTRA BLAS` sets ATen's and OpenBLAS's thread counts;
`step NAME` runs one step of workload NAME and answers its wall time in milliseconds.
"""
import ctypes
import json
import os
import struct
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



def tune_malloc():
    """The allocator policy the binding sets in the TypeScript process (native/runtime.cc, TuneMalloc).

    glibc hands the top of the heap back to the OS once more than M_TRIM_THRESHOLD is free there and
    serves blocks above M_MMAP_THRESHOLD with fresh mmaps, so a process that frees its activations
    re-faults them page by page on the next step (on this VM ~30 µs a fault: an encode of 64 images took
    ~800 ms instead of ~160 ms). The TypeScript side keeps up to IMAGEBART_MALLOC_TRIM bytes (default
    1 GiB) and serves tensors up to 32 MiB from the heap; the reference gets the same policy, so the
    ratio compares the implementations, not two malloc settings. IMAGEBART_MALLOC_TRIM=0 turns it off
    on both sides.
    """
    trim = int(os.environ.get("IMAGEBART_MALLOC_TRIM", 1 << 30))
    if trim <= 0:
        return
    libc = ctypes.CDLL("libc.so.6")
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    libc.mallopt(M_TRIM_THRESHOLD, min(trim, 0x7FFFFFFF))
    libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)


DTYPES = {"F32": torch.float32, "I64": torch.int64, "I32": torch.int32, "F64": torch.float64}


def load_safetensors(path):
    """Tensors and metadata of a safetensors file (no dependency on the safetensors package)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = bytearray(f.read())
    meta = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        t = torch.frombuffer(data[a:b], dtype=DTYPES[info["dtype"]]) if b > a else torch.empty(0, dtype=DTYPES[info["dtype"]])
        out[name] = t.reshape(info["shape"]).clone()
    return out, meta


def serve(workloads):
    tune_malloc()
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
