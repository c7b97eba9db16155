"""Golden vectors: the bytes of fixed inputs must not change (``tests/regen_golden.py``).

A symmetric change to the container writer and reader, to the entropy
parameters or to the state-dict keys (they enter the weights hash in the
header) fails here even though every round trip still works.
"""

from __future__ import annotations

import json

import pytest

from compressai_rdc import codec

from regen_golden import OLD_FORMAT_FILES, SHIPPED_FILE, UNTRAINED_FILE, builtin_models, cases, fixed_image, psnr, shipped, untrained

REGEN = "python -m tests.regen_golden"


def _check(model, name, expected):
    x = fixed_image()
    assert sorted(expected) == sorted(c for c, _ in cases(name))
    for case, controls in cases(name):
        want = expected[case]
        data = codec.encode(model, x, **controls)
        assert data.hex() == want["hex"], f"{name}/{case}: container bytes changed ({len(data)} vs {len(want['hex']) // 2} bytes)"
        # decode the stored bytes, not the fresh ones: a reader-only change fails here
        x_hat = codec.decode(bytes.fromhex(want["hex"]), model)
        assert psnr(x_hat, x) == pytest.approx(want["psnr"], abs=1e-3), f"{name}/{case}: decoded image changed"


def test_every_builtin_model_has_golden_vectors():
    table = json.loads(UNTRAINED_FILE.read_text())
    assert sorted(table) == sorted(builtin_models()), f"registered built-ins changed: run `{REGEN}`"


@pytest.mark.parametrize("name", sorted(json.loads(UNTRAINED_FILE.read_text())))
def test_untrained_golden_bytes(name):
    _check(untrained(name), name, json.loads(UNTRAINED_FILE.read_text())[name])


@pytest.mark.parametrize("entry", shipped(), ids=lambda e: f"{e[0]}-{e[1]}")
def test_shipped_weights_golden_bytes(entry):
    name, metric, sha, load = entry
    table = json.loads(SHIPPED_FILE.read_text())
    if sha not in table:
        pytest.fail(f"no golden vectors for the shipped {name} ({metric}) weights sha256 {sha[:12]}…: "
                    f"new weights shipped? refresh with `{REGEN} --shipped`")
    assert table[sha]["model"] == name
    _check(load(), name, table[sha]["vectors"])


@pytest.mark.parametrize(
    "version, name", [(v, n) for v, f in sorted(OLD_FORMAT_FILES.items()) for n in sorted(json.loads(f.read_text()))]
)
def test_older_format_golden_streams_still_decode(version, name):
    """Streams written in container formats 2 and 3 decode to the images they decoded to then."""
    model, x = untrained(name), fixed_image()
    for case, want in json.loads(OLD_FORMAT_FILES[version].read_text())[name].items():
        data = bytes.fromhex(want["hex"])
        assert codec.read_header(data).version == version, case
        assert psnr(codec.decode(data, model), x) == pytest.approx(want["psnr"], abs=1e-3), f"{name}/{case}: decoded image changed"
