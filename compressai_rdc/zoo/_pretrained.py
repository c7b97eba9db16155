"""Offline weight resolution, verification and loading (safetensors only).

Resolution order for ``pretrained=True``:

1. an explicit ``weights=`` path (a file, or a folder holding the expected file);
2. the file shipped inside a package: the :class:`~compressai_rdc.registry.WeightSpec`'s
   ``package`` (a plugin's own), else compressai-rdc's ``compressai_rdc/zoo/weights/``;
3. the folder named by ``$COMPRESSAI_RDC_WEIGHTS``.

Nothing is ever downloaded. Files with a declared sha256 are verified before
they are read; pickle formats are refused.
"""

from __future__ import annotations

import hashlib
import os
from importlib.resources import files
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple, Union

import torch
from torch import nn

from compressai_rdc.errors import ChecksumError, WeightsFormatError, WeightsNotFoundError

WEIGHTS_ENV = "COMPRESSAI_RDC_WEIGHTS"
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "network", "model")
_PREFIXES = ("module.", "_orig_mod.", "state_dict.", "model.")

PathLike = Union[str, os.PathLike]


def shipped_weights_dir(package: Optional[str] = None) -> Path:
    """Folder of the weights shipped inside an installed package: ``package``'s own
    folder (a plugin shipping weights), else compressai-rdc's ``zoo/weights``."""
    if package is None:
        return Path(str(files("compressai_rdc.zoo") / "weights"))
    try:
        return Path(str(files(package)))
    except ModuleNotFoundError as exc:
        raise WeightsNotFoundError(f"weights package {package!r} is not importable: {exc}") from exc


def sha256_file(path: PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve_weights(
    file_name: Optional[str], weights: Optional[PathLike] = None, *, what: str = "model", package: Optional[str] = None
) -> Path:
    """Find a weights file offline, in the documented order.

    Args:
        file_name: the expected file name (from the zoo table), or ``None``
            when the zoo has no pretrained weights for this model.
        weights: explicit file or folder given by the caller.
        what: name used in error messages.
        package: package whose folder holds ``file_name`` (``None`` = compressai-rdc's zoo).

    Raises:
        WeightsNotFoundError: naming every place that was tried.
    """
    tried: List[str] = []
    if weights is not None:
        p = Path(weights).expanduser()
        if p.is_dir():
            if file_name is None:
                raise WeightsNotFoundError(
                    f"weights={str(p)!r} is a folder, but {what} has no registered weights file name; "
                    "pass the path of a .safetensors file"
                )
            p = p / Path(file_name).name
        if p.is_file():
            return p
        raise WeightsNotFoundError(f"weights file for {what} not found: {str(p)!r}")
    if file_name is not None:
        shipped = shipped_weights_dir(package) / file_name
        if shipped.is_file():
            return shipped
        tried.append(f"shipped file {str(shipped)!r}")
        env_dir = os.environ.get(WEIGHTS_ENV)
        if env_dir:
            p = Path(env_dir).expanduser() / Path(file_name).name
            if p.is_file():
                return p
            tried.append(f"${WEIGHTS_ENV} file {str(p)!r}")
        else:
            tried.append(f"${WEIGHTS_ENV} (unset)")
        raise WeightsNotFoundError(
            f"no pretrained weights for {what}: tried {', '.join(tried)}. "
            f"Pass weights=<path to {file_name}> or set {WEIGHTS_ENV} to its folder; nothing is downloaded."
        )
    raise WeightsNotFoundError(
        f"{what} has no pretrained weights registered in the zoo; pass weights=<path to a .safetensors file> "
        "(for example one written by `compressai-rdc train`)"
    )


def load_state_dict_file(path: PathLike, sha256: Optional[str] = None) -> Dict[str, torch.Tensor]:
    """Read a ``.safetensors`` state dict, verifying ``sha256`` when given."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise WeightsFormatError(
            f"{str(path)!r} is not a .safetensors file; compressai-rdc never unpickles weights. "
            "Convert a trusted checkpoint with `safetensors.torch.save_file(state_dict, 'x.safetensors')`."
        )
    if not path.is_file():
        raise WeightsNotFoundError(f"weights file {str(path)!r} not found" + (" (it is a folder)" if path.is_dir() else ""))
    if sha256 is not None:
        actual = sha256_file(path)
        if actual != sha256:
            raise ChecksumError(f"sha256 of {str(path)!r} is {actual}, expected {sha256}: the file is corrupt or not the registered one")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except SafetensorError as exc:
        raise WeightsFormatError(f"{str(path)!r} is not a readable safetensors file: {exc}") from exc


def clean_state_dict(state_dict: Mapping, *, cast: bool = True) -> Dict[str, torch.Tensor]:
    """Unwrap ``{"state_dict": ...}``-style containers and strip DDP/compile prefixes;
    floating tensors are cast to float32 (shipped weights are fp16) unless ``cast=False``."""
    sd = dict(state_dict)
    for key in _WRAPPER_KEYS:
        if key in sd and isinstance(sd[key], Mapping):
            sd = dict(sd[key])
            break
    out: Dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            continue
        changed = True
        while changed:
            changed = False
            for p in _PREFIXES:
                if k.startswith(p):
                    k, changed = k[len(p):], True
        out[k] = v.float() if cast and v.is_floating_point() else v
    return out


def load_into(model: nn.Module, state_dict: Mapping, *, source: str = "state dict") -> nn.Module:
    """Load ``state_dict`` into ``model``, resizing CompressAI's entropy-coder buffers.

    The entropy-coder tables are then recomputed from the loaded parameters
    (``model.update(force=True)``). Tables are a function of the parameters, but
    a file's tables may have been computed before its parameters were rounded to
    fp16 (the shipped ``rdc-versatile`` file: 6 of its 6 table buffers differ
    from a recomputation); a stream made after a caller's own
    ``update(force=True)`` would then decode to NaN on a model that kept the
    file's tables, and the weights hash (:func:`compressai_rdc.codec.weights_hash`)
    rightly refuses it. Recomputing at load makes ``update(force=True)`` a no-op
    on loaded weights, so both sides hold the same tables.

    Raises:
        WeightsFormatError: ``state_dict`` is not a mapping of tensors (a file path
            needs :func:`load_state_dict_file` first) or does not fit ``model``.
    """
    if isinstance(state_dict, (str, os.PathLike)):
        raise WeightsFormatError(
            f"load_into got the path {str(state_dict)!r}, not a state dict; read the file first: "
            f"load_into(model, load_state_dict_file({str(state_dict)!r}))"
        )
    if not isinstance(state_dict, Mapping):
        raise WeightsFormatError(f"load_into needs a state dict (a mapping name -> tensor), got {type(state_dict).__name__}")
    raw = clean_state_dict(state_dict, cast=False)
    sd = {k: v.float() if v.is_floating_point() else v for k, v in raw.items()}
    _keep_exact_constants(model, raw, sd)
    _fill_missing_entropy_tables(model, sd)
    try:
        model.load_state_dict(sd)
    except RuntimeError as exc:
        raise WeightsFormatError(f"weights from {source} do not fit {type(model).__name__}: {exc}") from exc
    from compressai.entropy_models import EntropyModel

    if any(isinstance(m, EntropyModel) for m in model.modules()):
        model.update(force=True)
    return model


def _keep_exact_constants(model: nn.Module, raw: Mapping[str, torch.Tensor], sd: Dict[str, torch.Tensor]) -> None:
    """Keep the model's own float32 value of a buffer that a file holds only as its
    fp16 rounding.

    Buffers such as CompressAI's likelihood bound (1e-9) and GDN's pedestal
    (2^-36) are constants of the architecture, and fp16 flushes them to zero: a
    zero likelihood bound makes the rate infinite as soon as training continues
    from such a file. Files written by :func:`save_weights` keep buffers in their
    own dtype; for fp16 buffers from other writers, a value that equals the
    model's constant rounded to fp16 *is* that constant, so the exact one is used.
    """
    for name, buf in model.named_buffers():
        v = raw.get(name)
        if (v is not None and v.dtype == torch.float16 and buf.is_floating_point() and buf.dtype != torch.float16
                and v.shape == buf.shape and torch.equal(buf.detach().cpu().half(), v.cpu())):
            sd[name] = buf.detach().clone()


def _fill_missing_entropy_tables(model: nn.Module, sd: Dict[str, torch.Tensor]) -> None:
    """Weights saved before ``update()`` lack the coder tables; keep the model's
    (empty) ones so CompressAI's resizing loader accepts them, then update."""
    from compressai.entropy_models import EntropyModel, GaussianConditional

    for name, module in model.named_modules():
        if not isinstance(module, EntropyModel):
            continue
        buffers = ["_quantized_cdf", "_offset", "_cdf_length"]
        if isinstance(module, GaussianConditional):
            buffers.append("scale_table")
        for b in buffers:
            sd.setdefault(f"{name}.{b}", getattr(module, b))


def save_weights(model: nn.Module, path: PathLike, *, half: bool = True, metadata: Optional[Dict[str, str]] = None) -> Tuple[Path, str]:
    """Write ``model``'s state dict as safetensors and return ``(path, sha256)``.
    Refuses to overwrite a file.

    With ``half``, floating *parameters* are stored in fp16 (those with values
    beyond fp16's range stay float32); buffers keep their dtype, because they
    hold constants fp16 cannot represent (likelihood bound 1e-9, GDN pedestal
    2^-36) and entropy-coder tables, and they are a few kilobytes.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{str(path)!r} exists; remove it or choose another path")
    params = {k for k, _ in model.named_parameters()}
    fp16_max = torch.finfo(torch.float16).max
    sd = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        if half and k in params and v.is_floating_point() and v.abs().max() <= fp16_max:
            v = v.half()
        sd[k] = v.contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(path), metadata=metadata)
    _normal_permissions(path)
    return path, sha256_file(path)


def known_weights(path: PathLike) -> Optional[Tuple[str, str, str]]:
    """``(model, key, sha256)`` of the zoo entry whose file name is ``path``'s name, else ``None``."""
    from compressai_rdc.registry import MODELS

    name = Path(path).name
    for model in MODELS.names():
        for key, spec in MODELS.get(model).weights.items():
            if spec.file == name:
                return model, key, spec.sha256
    return None


def verify_weights_file(path: PathLike) -> Tuple[bool, str]:
    """Check a user-given weights file against the zoo by its file name.

    A file named like a registered weights file must have that file's sha256
    (:class:`ChecksumError` otherwise: a tampered or truncated copy). Returns
    ``(known, message)``: ``known`` is False for a file the zoo does not know,
    and ``message`` says plainly which case applies, with the file's digest.
    """
    path = Path(path)
    entry = known_weights(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return False, f"weights {str(path)!r}"
    actual = sha256_file(path)
    if entry is None:
        return False, (f"using unregistered weights {str(path)!r} (sha256 {actual}): "
                       "not a zoo file, so nothing vouches for its contents")
    model, key, expected = entry
    if actual != expected:
        raise ChecksumError(
            f"{str(path)!r} has the name of the zoo's {model} ({key}) weights but sha256 {actual}, "
            f"expected {expected}: the file is corrupt or was modified"
        )
    return True, f"verified zoo weights {model} ({key}) {str(path)!r}, sha256 {actual}"


def read_tensors_file(path: PathLike) -> Dict[str, object]:
    """Read a checkpoint without ever unpickling code.

    ``.safetensors`` files are read by :func:`load_state_dict_file`; any other
    file with ``torch.load(weights_only=True)`` (explicitly: torch < 2.6
    defaults to full unpickling), which only rebuilds tensors and plain
    containers.

    Raises:
        WeightsFormatError: the file needs pickled code (or is not a checkpoint).
    """
    import pickle

    path = Path(path)
    if path.suffix == ".safetensors":
        return load_state_dict_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, EOFError, ValueError) as exc:
        raise WeightsFormatError(
            f"checkpoint {str(path)!r} is not a tensors-only file ({type(exc).__name__}: {str(exc)[:200]}); "
            "compressai-rdc never unpickles code: save a state dict (safetensors, or torch.save of tensors)"
        ) from exc



def _normal_permissions(path: Path) -> None:
    """safetensors creates files readable by the owner only (0600); give the file
    the mode any new file gets here (0644 under the usual umask 022)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)
