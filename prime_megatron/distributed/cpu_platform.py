"""Let megatron-core run on a CPU-only host (gloo). A no-op when CUDA is available.

megatron-core is written for CUDA: it asks ``torch.cuda.current_device()`` for the
device of buffers at ~200 sites, passes ``device="cuda"`` literally at ~70 more, keeps its
tensor-parallel RNG streams in CUDA generators, and synchronises on CUDA streams/events.
On a CPU-only host we make each of those mean "the CPU":

* ``torch.cuda.current_device`` returns ``"cpu"``; stream/event/synchronize become no-ops
  (stand-ins are classes, because vLLM and transformers evaluate ``torch.cuda.Stream | None``).
* Building a model (``cuda_to_cpu()``, entered by ``models.builder.build_gpt_model``) runs
  under a ``TorchFunctionMode`` that rewrites ``device="cuda"`` arguments and ``.cuda()``
  calls to the CPU: construction code is where most literal CUDA sites are.
* While models run, the only literal CUDA sites Megatron reaches on our paths get targeted
  stand-ins (``_install_runtime_stand_ins``): the schedules' ``total_num_tokens`` counter
  and the causal softmax mask.
* The RNG tracker keeps its named streams as CPU generator states (see ``CpuRNGStatesTracker``).

Why not one process-wide mode (what this module did before): a mode sees every torch call
the process makes, in Python, Megatron's or not (kernels, optimizer, transformers): 2,382
dispatches per training step of the tiny default model; taking it off our step cut that
step from 0.94 to 0.81 s (1 thread, in-process A/B, benchmarks/train_step.py's batch).
The literal CUDA sites were found by logging every rewrite the process-wide mode made over
``benchmarks/train_step.py`` and the dist update tests, and by reading megatron-core's
literal sites on our call paths: while running, only the two above; while building, e.g.
``.cuda()`` on tied embeddings at PP > 1. A path that reaches
another site fails with torch's "Torch not compiled with CUDA enabled";
``PRIME_CPU_CUDA_MODE=process`` brings the process-wide mode back until that site has its
stand-in.

Everything here patches ``torch.cuda`` attributes and Megatron module attributes, never
megatron's files, and only when ``torch.cuda.is_available()`` is False. Written for and
tested with ``MEGATRON_CORE_VERSION``; newer releases add new CUDA call sites, so
``enable()`` refuses other versions unless told. Each shim and why it exists, and the CPU
settings that live elsewhere: docs/cpu-platform.md.
"""

from __future__ import annotations

import contextlib
import functools
import os
import types
from collections.abc import Iterator
from typing import Any

import torch
from megatron.core.tensor_parallel.random import CudaRNGStatesTracker
from torch.overrides import TorchFunctionMode

MEGATRON_CORE_VERSION = "0.16.1"

_enabled = False


class _NullStream:
    """Stands in for ``torch.cuda.Stream``: CPU work is already ordered."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def wait_stream(self, other: Any) -> None:
        pass

    def wait_event(self, event: Any) -> None:
        pass

    def synchronize(self) -> None:
        pass

    def record_event(self, event: Any = None) -> _NullEvent:
        return event or _NullEvent()


class _NullEvent:
    """Stands in for ``torch.cuda.Event``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def record(self, stream: Any = None) -> None:
        pass

    def wait(self, stream: Any = None) -> None:
        pass

    def synchronize(self) -> None:
        pass

    def query(self) -> bool:
        return True


def _to_cpu_device(value: Any) -> Any:
    if isinstance(value, torch.device) and value.type == "cuda":
        return torch.device("cpu")
    if isinstance(value, str) and value.startswith("cuda"):
        return "cpu"
    if isinstance(value, int) and not isinstance(value, bool):
        return "cpu"  # a bare CUDA ordinal, as returned by current_device() on GPU
    return value


class CudaToCpuMode(TorchFunctionMode):
    """Maps ``device="cuda"`` / ``.cuda()`` / ``.to("cuda")`` to the CPU."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.Tensor.cuda:
            return args[0]
        if "device" in kwargs:
            kwargs["device"] = _to_cpu_device(kwargs["device"])
        if func is torch.Tensor.to and len(args) > 1:
            args = (args[0], _to_cpu_device_for_to(args[1]), *args[2:])
        return func(*args, **kwargs)


def _to_cpu_device_for_to(value: Any) -> Any:
    # ``tensor.to(x)``: x may be a dtype or a tensor; only device-like values are rewritten.
    if isinstance(value, (torch.device, str)):
        return _to_cpu_device(value)
    return value


def is_cpu_only() -> bool:
    return not torch.cuda.is_available()


def enable(allow_other_megatron_version: bool | None = None) -> None:
    """Install the CPU stand-ins (idempotent). Does nothing when CUDA is available."""
    global _enabled
    if _enabled or not is_cpu_only():
        return
    if allow_other_megatron_version is None:
        allow_other_megatron_version = os.environ.get("PRIME_ALLOW_MEGATRON_VERSION") == "1"
    _check_megatron_version(allow_other_megatron_version)
    cuda = torch.cuda
    cuda.current_device = lambda: "cpu"
    cuda.set_device = lambda device: None
    cuda.synchronize = lambda device=None: None
    cuda.Stream = _NullStream
    cuda.Event = _NullEvent
    cuda.current_stream = lambda device=None: _NullStream()
    cuda.default_stream = lambda device=None: _NullStream()
    cuda.stream = lambda stream=None: contextlib.nullcontext()
    cuda.empty_cache = lambda: None
    cuda.memory_allocated = lambda device=None: 0
    cuda.max_memory_allocated = lambda device=None: 0
    cuda.nvtx.range_push = lambda msg: None
    cuda.nvtx.range_pop = lambda: None
    _install_cpu_rng_tracker()
    _install_runtime_stand_ins()
    if os.environ.get("PRIME_CPU_CUDA_MODE") == "process":
        CudaToCpuMode().__enter__()  # the escape hatch: every call, for the whole process
    _enabled = True


@contextlib.contextmanager
def cuda_to_cpu() -> Iterator[None]:
    """Within: ``device="cuda"`` / ``.cuda()`` mean the CPU (nothing changes unless enabled)."""
    if not _enabled:
        yield
        return
    with CudaToCpuMode():
        yield


class _CpuFactoryTorch(types.ModuleType):
    """``torch`` as one Megatron module sees it: ``zeros(device="cuda")`` makes a CPU tensor.

    Replaces that module's ``torch`` global, so only its own calls pay the indirection."""

    def __init__(self) -> None:
        super().__init__("torch")

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    @staticmethod
    def zeros(*size: Any, device: Any = None, **kwargs: Any) -> torch.Tensor:
        return torch.zeros(*size, device=_to_cpu_device(device), **kwargs)


@functools.lru_cache(maxsize=16)
def _causal_mask(sq: int) -> torch.Tensor:
    """Megatron's ``get_default_causal_mask`` on the CPU, one per length: it only feeds
    ``masked_fill_`` as the mask, so a shared copy is safe. Never an inference tensor (the
    first call may come under inference_mode), which autograd could not save later."""
    with torch.inference_mode(False):
        return torch.ones(sq, sq, dtype=torch.bool).triu(1)


def _install_runtime_stand_ins() -> None:
    """The literal ``device="cuda"`` sites Megatron reaches while a model runs."""
    from megatron.core.fusions import fused_softmax
    from megatron.core.pipeline_parallel import schedules

    # Every schedule starts with torch.zeros([], dtype=torch.int, device="cuda").
    schedules.torch = _CpuFactoryTorch()
    # Called once per attention layer and micro-batch when no mask is passed.
    fused_softmax.get_default_causal_mask = _causal_mask


def _check_megatron_version(allow_other: bool) -> None:
    from megatron.core import package_info

    found = package_info.__version__
    if found != MEGATRON_CORE_VERSION and not allow_other:
        raise RuntimeError(
            f"prime_megatron's CPU platform layer was written for megatron-core=="
            f"{MEGATRON_CORE_VERSION}, found {found}. Install the pinned version "
            "(pip install -e .) or set PRIME_ALLOW_MEGATRON_VERSION=1 to try anyway."
        )


def _install_cpu_rng_tracker() -> None:
    from megatron.core.tensor_parallel import random as mrandom

    mrandom._CUDA_RNG_STATE_TRACKER = CpuRNGStatesTracker()
    mrandom._CUDA_RNG_STATE_TRACKER_INITIALIZED = True


class CpuRNGStatesTracker(CudaRNGStatesTracker):
    """Megatron's named RNG streams (model-parallel, data-parallel...) kept as CPU states.

    ``fork(name)`` swaps the CPU default generator's state for the named stream and back,
    which is what the CUDA tracker does with the CUDA generator.
    """

    def add(self, name: str, seed: int) -> None:
        if seed in self.seeds_:
            raise Exception(f"seed {seed} already exists")
        self.seeds_.add(seed)
        if name in self.states_:
            raise Exception(f"rng state {name} already exists")
        gen = torch.Generator().manual_seed(seed)
        self.states_[name] = gen.get_state()

    @contextlib.contextmanager
    def fork(self, name: str = "model-parallel-rng"):
        if name not in self.states_:
            raise Exception(f"rng state {name} is not added")
        orig = torch.get_rng_state()
        torch.set_rng_state(self.states_[name])
        try:
            yield
        finally:
            self.states_[name] = torch.get_rng_state()
            torch.set_rng_state(orig)
