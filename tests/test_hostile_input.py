"""Hostile and malformed input: decode limits, typed errors on every model path,
images and tensors the encoder refuses, outputs that would destroy an input."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from PIL import Image

from compressai_rdc import codec
from compressai_rdc.cli import main
from compressai_rdc.container import (
    BitstreamError,
    CorruptBitstreamError,
    StreamHeader,
    TruncatedBitstreamError,
    pack,
    unpack,
)
from compressai_rdc.data import AlphaDroppedWarning, load_image
from compressai_rdc.errors import DatasetError, InvalidArgumentError
from compressai_rdc.limits import (
    DEFAULT_BYTES_PER_PIXEL,
    DEFAULT_MAX_MEMORY,
    DecodeLimitError,
    DecodeLimits,
    check_image,
    guard_size,
    planned_memory,
)
from compressai_rdc.models import HEVRC, RDCVersatile


@pytest.fixture(scope="module")
def rdc():
    torch.manual_seed(0)
    net = RDCVersatile(N=16, M=16, levels=4, residual_N=8, residual_M=8, residual_layers=2).eval()
    net.update(force=True)
    return net, net.encode(torch.rand(1, 3, 64, 64), rate=2.0)


@pytest.fixture(scope="module")
def hevrc():
    torch.manual_seed(0)
    net = HEVRC(N=16, M=16, cond_channels=8).eval()
    net.update(force=True)
    return net, codec.encode(net, torch.rand(1, 3, 40, 56), qmap=0.5)


@pytest.fixture(scope="module")
def mbt():
    import compressai.zoo.image

    torch.manual_seed(0)
    net = compressai.zoo.image.model_architectures["mbt2018-mean"](N=8, M=8).eval()
    net.update(force=True)
    return net, codec.encode(net, torch.rand(1, 3, 40, 56))


def _forge(blob: bytes, **change) -> bytes:
    header, strings = unpack(blob)
    strings = change.pop("strings", strings)
    return pack(StreamHeader(**{**header.__dict__, **change}), strings)


# -----------------------------------------------------------------------------
# decode limits
# -----------------------------------------------------------------------------
def test_forged_4096_container_is_refused_from_its_header(rdc):
    """The audit's 147-byte container announcing 4096² decoded for 110 s in 6 GB. Untiled
    (``tile=None``) the memory limit refuses it before the payload is even read. With the
    default tiling a 4096² decode plans for far less (issue #14: any size within the pixel
    limit decodes in bounded memory), so it passes the memory limit; one tile row more is
    refused by the pixel limit, again from the header alone."""
    net, blob = rdc
    header, strings = unpack(blob)

    def forge(height: int, width: int) -> bytes:
        return pack(StreamHeader(**{**header.__dict__, "height": height, "width": width, "pad": (0, 0, 0, 0),
                                    "shape": (height // 16, width // 16)}), strings)

    forged = forge(4096, 4096)
    assert len(forged) < 400
    untiled = DecodeLimits(tile=None)
    with pytest.raises(DecodeLimitError, match=r"plans for 6740 MiB, above the decode limit of 4096 MiB"):
        codec.decode(forged, net, limits=untiled)
    assert planned_memory(codec.read_header(forged), net, DecodeLimits().tile_for(net)) < DEFAULT_MAX_MEMORY  # tiled: admitted
    with pytest.raises(DecodeLimitError, match=r"1x4112x4096 = 16842752 padded pixels, above the decode limit of 16777216"):
        codec.decode(forge(4112, 4096), net)
    # header-only: a stream cut right after its header fails on the limit, not on the truncation
    h = codec.read_header(forged)
    with pytest.raises(DecodeLimitError):
        codec.decode(forged[: h.header_size + 1], net, limits=untiled)
    with pytest.raises(TruncatedBitstreamError):
        codec.decode(forged[: h.header_size + 1], net, limits=DecodeLimits(max_pixels=1 << 26, max_memory=1 << 40))


def test_limits_are_caller_settable(rdc):
    net, blob = rdc
    with pytest.raises(DecodeLimitError, match="4096 padded pixels, above the decode limit of 4095"):
        codec.decode(blob, net, limits=DecodeLimits(max_pixels=64 * 64 - 1))
    assert codec.decode(blob, net, limits=DecodeLimits(max_pixels=64 * 64)).shape == (1, 3, 64, 64)
    need = planned_memory(codec.read_header(blob), net)
    with pytest.raises(DecodeLimitError, match="MiB"):
        codec.decode(blob, net, limits=DecodeLimits(max_memory=need - 1))
    assert codec.decode(blob, net, limits=DecodeLimits(max_memory=need)).shape == (1, 3, 64, 64)
    assert isinstance(DecodeLimitError("x"), BitstreamError)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InvalidArgumentError, match="positive integer"):
            DecodeLimits(max_pixels=bad)


def test_planned_memory_counts_activations_payload_and_guards():
    header = StreamHeader(model_name="m", weights_hash=bytes(8), batch=2, height=60, width=64, pad=(0, 0, 2, 2),
                          shape=(1, 1), layers=(0, 0), lengths=((10, 20), (30, 40)), crcs=((0, 0), (0, 0)))
    model = torch.nn.Module()
    pixels = 2 * 64 * 64
    guard = int(4 * 1.5 * 64 * 64) + 256
    assert guard_size(header, model) == guard
    assert planned_memory(header, model) == DEFAULT_BYTES_PER_PIXEL * pixels + 100 + 4 * guard + 9 * 100
    model.decode_bytes_per_pixel, model.symbols_per_pixel = 1000, 3.0
    assert planned_memory(header, model) == 1000 * pixels + 100 + 4 * (int(4 * 3.0 * 64 * 64) + 256) + 900
    # the default bound admits an untiled 2048² rdc-versatile decode and refuses an untiled 4096² one
    # (tiled, 4096² fits: tests/test_tiling.py::test_tiling_bounds_the_planned_memory)
    assert 400 * 2048**2 < DEFAULT_MAX_MEMORY < 370 * 4096**2


# -----------------------------------------------------------------------------
# every malformed stream -> BitstreamError, on every model path
# -----------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["strings", "shape", "x", "self"])
def test_stored_control_named_like_a_parameter(hevrc, mbt, key):
    for net, blob in (hevrc, mbt):
        with pytest.raises(CorruptBitstreamError, match=repr(key)):
            codec.decode(_forge(blob, controls={key: 1.0}), net)
        with pytest.raises(InvalidArgumentError, match=f"no control {key!r}"):
            codec.decode(blob, net, **{key: 1.0})


def test_wrong_substream_group_count(rdc, hevrc, mbt):
    for net, blob in (rdc, hevrc, mbt):
        header, strings = unpack(blob)
        for groups in (strings[:1], strings + [strings[-1]], strings[:1] * 3):
            layers = tuple(sorted(min(t, len(groups)) for t in (list(header.layers) + [max(header.layers)] * 3)[: len(groups)]))
            with pytest.raises(CorruptBitstreamError, match="substream groups|strings|streams|layer") as info:
                codec.decode(_forge(blob, strings=groups, layers=layers), net)
            assert not isinstance(info.value, InvalidArgumentError)
    # CompressAI's own assert is reported with the model's name, its cause chained
    header, strings = unpack(mbt[1])
    with pytest.raises(CorruptBitstreamError, match="MeanScaleHyperprior.decompress rejected") as info:
        codec.decode(_forge(mbt[1], strings=strings + [strings[0]], layers=(0, 0, 0)), mbt[0])
    assert isinstance(info.value.__cause__, AssertionError)


@pytest.mark.parametrize("shape", [(1, 1, 1), (1,), (), (1, 1, 1, 1, 1, 1, 1, 1)])
def test_shape_of_other_lengths(rdc, hevrc, mbt, shape):
    for net, blob in (rdc, hevrc, mbt):
        with pytest.raises(CorruptBitstreamError, match="shape"):
            codec.decode(_forge(blob, shape=shape), net)


def test_fuzzer_tool_runs_and_reports(tmp_path):
    """The shipped fuzzer (scripts/fuzz_decoder.py) on a few cases: no bug outcomes."""
    import json
    import subprocess
    import sys

    out = tmp_path / "fuzz.json"
    script = os.path.join(os.path.dirname(__file__), "..", "scripts", "fuzz_decoder.py")
    root = os.path.join(os.path.dirname(__file__), "..")  # this checkout's package, not an editable install's
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, script, "--arch", "hevrc", "--cases", "60", "--json", str(out)],
                          capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=path))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(out.read_text())["results"][0]
    assert result["arch"] == "hevrc" and result["cases"] == 60
    assert sum(result["outcomes"].values()) == 60
    assert set(result["outcomes"]) <= {"typed", "decoded"}
    assert "60 cases over 1 architectures: untyped 0, over-time 0, over-memory 0, death 0" in proc.stdout
    # a long run split over sessions: the next case range, then one table over both files
    more = tmp_path / "fuzz-more.json"
    proc = subprocess.run([sys.executable, script, "--arch", "hevrc", "--start", "60", "--cases", "20", "--json", str(more)],
                          capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=path))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    second = json.loads(more.read_text())["results"][0]
    assert (second["first_case"], second["cases"], sum(second["outcomes"].values())) == (60, 20, 20)
    fuzz = _fuzzer_module()
    (row,) = fuzz.merge_runs([str(out), str(more)])
    assert row["cases"] == 80 and sum(row["outcomes"].values()) == 80
    assert fuzz.table([str(out), str(more)]).splitlines()[2].startswith("| `hevrc` | 80 |")
    with pytest.raises(SystemExit, match="overlap"):
        fuzz.merge_runs([str(out), str(out)])


def _fuzzer_module():
    from conftest import load_repo_script

    return load_repo_script("scripts/fuzz_decoder.py")


def test_fuzzer_reports_the_cases_done_before_it_is_stopped(tmp_path, monkeypatch):
    """A run killed part-way (a session ends) keeps the figures of its completed
    thousands of cases: ``progress`` gets the result so far every 1000 cases."""
    fuzz = _fuzzer_module()
    snapshots = []

    class FakeProc:  # a worker that decodes every case it is given
        pid, exitcode = os.getpid(), 0

        def __init__(self, target, args, daemon):
            self.first, self.stop, self.conn = args[1], args[2], args[-1]

        def start(self):  # a thread plays the worker: the pipe holds only a few messages
            import threading

            self.thread = threading.Thread(target=self.run, daemon=True)
            self.thread.start()

        def run(self):
            try:
                self.conn.send(("ready", None))
                for k in range(self.first, self.stop):
                    self.conn.send(("case", (k, "flip", "decoded", "")))
                self.conn.send(("done", {"peak_rss_mb": 1.0}))
            except (BrokenPipeError, OSError):  # the parent stopped reading (the session ended)
                pass

        def is_alive(self):
            return self.thread.is_alive()

        def kill(self):
            pass

        def join(self):
            pass

    class ThreadEnd:  # the parent closes its copy of the child's end; the thread keeps it
        def __init__(self, conn):
            self.conn = conn

        def send(self, message):
            self.conn.send(message)

        def close(self):
            pass

    class Ctx:
        Process = FakeProc

        @staticmethod
        def Pipe(duplex):
            parent, child = __import__("multiprocessing").Pipe(duplex=duplex)
            return parent, ThreadEnd(child)

    class SessionEnded(Exception):
        pass

    def progress(partial):
        snapshots.append(partial)
        if len(snapshots) == 2:
            raise SessionEnded

    monkeypatch.setattr(fuzz.mp, "get_context", lambda kind: Ctx)
    with pytest.raises(SessionEnded):
        fuzz.run_arch("hevrc", 3000, 0, {"timeout": 10, "wall_timeout": 300}, log=lambda m: None, start=5000, progress=progress)
    assert [(p["first_case"], p["cases"], p["outcomes"]) for p in snapshots] == [(5000, 1000, {"decoded": 1000}), (5000, 2000, {"decoded": 2000})]
    snapshots.clear()
    r = fuzz.run_arch("hevrc", 800, 0, {"timeout": 10, "wall_timeout": 300}, log=lambda m: None, start=5000, progress=snapshots.append)
    assert (r["first_case"], r["cases"], r["outcomes"], snapshots) == (5000, 800, {"decoded": 800}, [])


# -----------------------------------------------------------------------------
# encoder input
# -----------------------------------------------------------------------------
@pytest.mark.parametrize("value, match", [(math.nan, "1 NaN/inf"), (math.inf, "1 NaN/inf"), (-math.inf, "1 NaN/inf"),
                                          (200.0, "divide by 255"), (-0.5, r"values in \[-0.5")])
def test_encode_rejects_bad_values(rdc, value, match):
    net, _ = rdc
    x = torch.rand(1, 3, 32, 32)
    x[0, 1, 5, 7] = value
    with pytest.raises(InvalidArgumentError, match=match):
        codec.encode(net, x, rate=1.0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16, torch.uint8])
def test_encode_rejects_other_dtypes(rdc, dtype):
    net, _ = rdc
    with pytest.raises(InvalidArgumentError, match=f"dtype {dtype}.*torch.float32"):
        codec.encode(net, torch.rand(1, 3, 32, 32).to(dtype), rate=1.0)


@pytest.mark.parametrize("shape", [(1, 3, 0, 0), (3, 0, 5), (0, 3, 8, 8)])
def test_encode_rejects_empty_images(rdc, shape):
    with pytest.raises(InvalidArgumentError, match="empty"):
        codec.encode(rdc[0], torch.rand(shape), rate=1.0)


def test_check_image_accepts_the_valid_range():
    x = torch.tensor([0.0, 1.0]).view(1, 1, 1, 2).expand(1, 3, 1, 2)
    assert check_image(x).shape == (1, 3, 1, 2)
    assert check_image(x[0]).shape == (1, 3, 1, 2)
    with pytest.raises(InvalidArgumentError, match=r"\(3, H, W\) or \(B, 3, H, W\), got \(1, 4, 1, 2\)"):
        check_image(torch.zeros(1, 4, 1, 2))


# -----------------------------------------------------------------------------
# image files
# -----------------------------------------------------------------------------
def test_16_bit_grey_png_keeps_its_values(tmp_path):
    a = (np.arange(48 * 64).reshape(48, 64) * 21).astype(np.uint16)
    Image.fromarray(a).save(tmp_path / "g16.png")
    x = load_image(tmp_path / "g16.png")
    assert x.shape == (3, 48, 64)
    want = torch.from_numpy(a.astype(np.float32) / 65535.0)
    assert torch.allclose(x[0], want, atol=1e-6) and torch.equal(x[0], x[2])
    assert 0.0 == float(x.min()) and abs(float(x.max()) - 3071 * 21 / 65535) < 1e-6


def test_rgba_alpha_is_dropped_with_a_warning(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    Image.fromarray(rgba).save(tmp_path / "opaque.png")
    with _no_warning(AlphaDroppedWarning):
        assert torch.allclose(load_image(tmp_path / "opaque.png")[0], torch.full((8, 8), 200 / 255))
    rgba[2, 3, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "hole.png")
    with pytest.warns(AlphaDroppedWarning, match="transparent pixels"):
        x = load_image(tmp_path / "hole.png")
    assert abs(float(x[0, 2, 3]) - 200 / 255) < 1e-6  # the stored colour, not a background


class _no_warning:
    def __init__(self, cls):
        self.cls = cls

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error", self.cls)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def test_decompression_bomb_is_a_typed_error(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64² > 2 × 1000: Pillow's bomb error
    with pytest.raises(DatasetError, match="too large to load"):
        load_image(tmp_path / "big.png")


# -----------------------------------------------------------------------------
# CLI outputs
# -----------------------------------------------------------------------------
def test_output_equal_to_input_is_refused_even_with_overwrite(tmp_path, capsys):
    src = tmp_path / "photo.rdc"
    src.write_bytes(b"RDCs-original")
    alias = tmp_path / "alias.rdc"
    os.link(src, alias)
    for out in (src, alias, tmp_path / "." / "photo.rdc"):
        assert main(["decode", str(src), "-o", str(out), "--overwrite", "--weights", str(tmp_path / "w.safetensors")]) == 2
        assert "would destroy the source" in capsys.readouterr().err
    img = tmp_path / "photo.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img)
    assert main(["encode", str(img), "-o", str(img), "--overwrite", "--model", "hevrc", "--rate", "1"]) == 2
    assert main(["qmap", str(img), "--out", str(img), "--overwrite", "--strategy", "uniform"]) == 2
    assert src.read_bytes() == b"RDCs-original" and load_image(img).shape == (3, 8, 8)


def test_qmap_figure_of_a_7x5000_image_is_bounded(tmp_path, capsys):
    from compressai_rdc.cli.qmap import panel_aspect

    assert panel_aspect(5000, 7) == (4.0, True) and panel_aspect(7, 5000) == (0.25, True)
    assert panel_aspect(256, 384) == (256 / 384, False)
    img = tmp_path / "tall.png"
    Image.fromarray((np.random.default_rng(0).random((5000, 7, 3)) * 255).astype(np.uint8)).save(img)
    out = tmp_path / "fig.png"
    assert main(["qmap", str(img), "--strategy", "uniform", "--out", str(out)]) == 0
    assert "aspect 5000:7 drawn at 4:1" in capsys.readouterr().out
    with Image.open(out) as fig:
        w, h = fig.size
    assert w <= 3 * 4.2 * 110 + 1 and h <= (4.2 * 4 + 0.6) * 110 + 1
