"""Roofline predictions: time = max(FLOPs / peak matmul rate, bytes moved / memory bandwidth).

A measured latency means little on its own; next to the fastest time this machine could possibly
reach it says whether the code is slow or the hardware is. Both rates are measured here, on the
machine that runs the benchmark, in the same process (`measure_machine`).

Accounting (a lower bound, per phase, then summed over phases):
- FLOPs come from `mqt_vlm.analysis.flops` (multiply-add = 2 FLOPs, matrix products only).
- Bytes moved are the weights each phase reads once (fp32 = 4 bytes per parameter, from the shapes,
  so a 7B preset needs no model in memory) plus the KV cache: written once by the prefill, read in
  full by every decode step. Activations are left out: they live in cache-sized pieces at these
  shapes, and the phases that move many of them (the vision tower, long prefills) are compute-bound.
- Each phase (vision tower, connector, LLM prefill, one decode step) is bound by whichever of its
  two terms is larger; a phase is never both. Summing per phase is tighter than max(sum, sum).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from mqt_vlm.analysis.flops import llm_decode_flops, llm_prefill_flops, mlp_projector_flops, mqt_flops, vision_flops
from mqt_vlm.analysis.shapes import LLMShape, MLPProjectorShape, ModelShape, MQTShape, VisionShape
from mqt_vlm.errors import MQTError

FP32_BYTES = 4

# "wall": elapsed time. "cpu": CPU time of the calling thread, i.e. the time the work ran, without
# the time the scheduler gave the core to other processes. With one torch thread all compute runs in
# the calling thread, so on a shared machine "cpu" measures the work while "wall" measures the queue.
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.thread_time}


def get_clock(name: str) -> Callable[[], float]:
    if name not in CLOCKS:
        raise MQTError(f"clock must be one of {sorted(CLOCKS)}, got {name!r}.")
    return CLOCKS[name]


@dataclass(frozen=True)
class MachineRates:
    """Peak fp32 matmul rate and streaming read bandwidth of this machine, as measured."""

    peak_flops: float  # FLOP/s, best of `repeats` square fp32 matmuls
    bandwidth: float  # bytes/s, best of `repeats` full reads (sum) of a large fp32 tensor
    copy_bandwidth: float  # bytes/s read + written by a large tensor copy (for reference)
    threads: int
    matmul_size: int
    stream_bytes: int
    cpu: str
    clock: str = "wall"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def ridge(self) -> float:
        """FLOPs per byte above which a phase is compute-bound on this machine."""
        return self.peak_flops / self.bandwidth


def cpu_name() -> str:
    """`lscpu`'s model name (what BENCHMARKS.md quotes), falling back to the platform string."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _best_seconds(fn: Any, repeats: int, clock: Callable[[], float]) -> float:
    fn()  # warm-up: first calls pay for page faults and kernel selection
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        fn()
        best = min(best, clock() - start)
    return best


def measure_machine(matmul_size: int = 2048, stream_mib: int = 512, repeats: int = 5, clock: str = "wall") -> MachineRates:
    """Measure the two roofline rates with the current torch thread setting.

    The best of several runs, not the median: a roofline is what the machine can do, and on a shared
    machine every disturbance only makes a run slower. A 2048^3 matmul (17 GFLOPs) is large enough to
    reach the BLAS library's peak and short enough to repeat; 512 MiB is far beyond any cache.
    """
    import torch

    now = get_clock(clock)
    a = torch.randn(matmul_size, matmul_size)
    b = torch.randn(matmul_size, matmul_size)
    out = torch.empty(matmul_size, matmul_size)
    matmul_s = _best_seconds(lambda: torch.mm(a, b, out=out), repeats, now)
    del a, b, out
    numel = stream_mib * 2**20 // FP32_BYTES
    x = torch.ones(numel)
    y = torch.empty_like(x)
    read_s = _best_seconds(lambda: x.sum(), repeats, now)
    copy_s = _best_seconds(lambda: y.copy_(x), repeats, now)
    return MachineRates(
        peak_flops=2 * matmul_size**3 / matmul_s,
        bandwidth=numel * FP32_BYTES / read_s,
        copy_bandwidth=2 * numel * FP32_BYTES / copy_s,
        threads=torch.get_num_threads(),
        matmul_size=matmul_size,
        stream_bytes=numel * FP32_BYTES,
        cpu=cpu_name(),
        clock=clock,
    )


def best_rates(*measured: MachineRates) -> MachineRates:
    """The best peak and the best bandwidth over several measurements (each is a lower bound on
    what the machine can do; interruptions on a shared machine only ever lower them)."""
    if not measured:
        raise ValueError("best_rates needs at least one measurement.")
    top = max(measured, key=lambda r: r.peak_flops)
    return MachineRates(
        peak_flops=top.peak_flops,
        bandwidth=max(r.bandwidth for r in measured),
        copy_bandwidth=max(r.copy_bandwidth for r in measured),
        threads=top.threads,
        matmul_size=top.matmul_size,
        stream_bytes=top.stream_bytes,
        cpu=top.cpu,
        clock=top.clock,
    )


# ---- parameters read per phase -------------------------------------------------------------------


def vision_params(shape: VisionShape) -> int:
    """Weights of the ViT: patch embedding, positions, and per layer 4 attention projections, the
    MLP and two LayerNorms (biases included)."""
    width = shape.width
    embed = shape.channels * shape.patch_size**2 * width + shape.seq_len * width + width * int(shape.class_token)
    per_layer = 4 * (width * width + width) + 2 * width * shape.mlp_size + shape.mlp_size + width + 4 * width
    norms = 4 * width if shape.run_all_layers else 2 * width  # pre LayerNorm, + post when run whole
    return embed + shape.layers_run * per_layer + norms


def connector_params(connector: MQTShape | MLPProjectorShape) -> int:
    if isinstance(connector, MLPProjectorShape):
        return connector.in_dim * connector.hidden_dim + connector.hidden_dim + connector.hidden_dim * connector.out_dim + connector.out_dim
    width = connector.width
    mha = 4 * (width * width + width)
    base = 2 * connector.num_queries * width + mha + 6 * width + width * connector.output_dim
    kv = connector.kv_dim * width if connector.kv_dim != width else 0
    block = 2 * mha + 2 * width * connector.mlp_hidden + connector.mlp_hidden + width + 6 * width
    return base + kv + (connector.depth - 1) * block


def llm_params_read(shape: LLMShape) -> int:
    """Weights a forward reads: every decoder layer, the final norm and the lm_head. The input
    embedding is a lookup of a few rows, so it is not counted (a tied lm_head reads it in full)."""
    q_width, kv_width = shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
    per_layer = shape.hidden * (2 * q_width + 2 * kv_width) + (3 if shape.gated_mlp else 2) * shape.hidden * shape.intermediate
    return shape.layers * (per_layer + 2 * shape.hidden) + shape.hidden + shape.hidden * shape.vocab


def kv_cache_bytes(shape: LLMShape, tokens: int, bytes_per_value: int = FP32_BYTES) -> int:
    """Keys and values of `tokens` positions in every layer."""
    return 2 * shape.layers * shape.kv_heads * shape.head_dim * tokens * bytes_per_value


# ---- phases ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    """One phase's work: FLOPs and bytes moved, and the time the roofline allows for it."""

    name: str
    flops: int
    bytes: int

    def seconds(self, rates: MachineRates) -> float:
        return max(self.flops / rates.peak_flops, self.bytes / rates.bandwidth)

    def bound(self, rates: MachineRates) -> str:
        return "compute" if self.flops / rates.peak_flops >= self.bytes / rates.bandwidth else "memory"


def encode_phases(spec: ModelShape, images: int = 1) -> list[Phase]:
    """Vision tower and connector for `images` images (weights read once for the whole batch)."""
    patches = spec.vision.num_patches
    connector = spec.connector
    connector_flops = mqt_flops(connector, patches) if isinstance(connector, MQTShape) else mlp_projector_flops(connector, patches)
    return [
        Phase("vision", images * vision_flops(spec.vision), FP32_BYTES * vision_params(spec.vision)),
        Phase("connector", images * connector_flops, FP32_BYTES * connector_params(connector)),
    ]


def prefill_phase(llm: LLMShape, seq_len: int, batch: int = 1) -> Phase:
    """The LLM prefill of `batch` sequences of `seq_len` tokens (lm_head on the last position)."""
    weights = FP32_BYTES * llm_params_read(llm)
    return Phase("llm_prefill", batch * llm_prefill_flops(llm, seq_len), weights + batch * kv_cache_bytes(llm, seq_len))


def decode_phase(llm: LLMShape, context_len: int, batch: int = 1) -> Phase:
    """One decode step for `batch` sequences, each attending to `context_len` cached tokens."""
    weights = FP32_BYTES * llm_params_read(llm)
    return Phase("llm_decode", batch * llm_decode_flops(llm, context_len), weights + batch * kv_cache_bytes(llm, context_len + 1))


def roofline_seconds(phases: list[Phase], rates: MachineRates) -> float:
    return sum(phase.seconds(rates) for phase in phases)


def default_threads() -> int:
    """Cores this process may use (what torch's intra-op pool should be sized to)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
