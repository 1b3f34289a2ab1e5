"""The precision a run trains in, and the peak its MFU divides by, measured on the device that trains.

MFU = tokens/s × training FLOPs per token (``trainer/config.py``, PaLM
Appendix B) / peak FLOP/s. The peak is this device's own dense matmul
throughput in the run's compute dtype — a GPU run is divided by that GPU's
speed, a CPU run by the CPU's — and the run records which device and dtype it
measured, so an MFU can be read against it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch


def resolve_precision(requested: str) -> str:
    """Lightning's precision for a run spec's ``precision`` ("auto": bf16 where the device has fast bf16)."""
    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32"
    # Some CPUs lack oneDNN bf16 matmul: autocast to bf16 then runs ~40x slower than fp32 (FIELD_NOTES).
    return "bf16-mixed" if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported() else "32"


@dataclass(frozen=True)
class PeakFlops:
    flops_per_s: float
    device: str  # e.g. "cpu" or "cuda:0 (NVIDIA H200)"
    dtype: str  # the matmul dtype measured: the run's compute dtype

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def measure_peak_flops(device: torch.device | str = "cpu", precision: str = "32", seconds: float = 0.3) -> PeakFlops:
    """Dense matmul throughput of ``device`` in the compute dtype of ``precision`` (bf16 under bf16-mixed)."""
    device = torch.device(device)
    dtype = torch.bfloat16 if precision.startswith("bf16") else torch.float32
    n = 4096 if device.type == "cuda" else 2048  # a GPU needs a larger product to reach its peak
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    _synchronize(device)
    a @ b  # warm-up: kernel selection, caches
    _synchronize(device)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(4 if device.type == "cuda" else 1):
            a @ b
            count += 1
        _synchronize(device)  # GPU kernels are asynchronous: count only what has run
    elapsed = time.perf_counter() - started
    name = str(device)
    if device.type == "cuda":
        name += f" ({torch.cuda.get_device_name(device)})"
    return PeakFlops(2 * n**3 * count / elapsed, name, str(dtype).removeprefix("torch."))


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
