"""Container format: round trips and hostile input (hypothesis property tests).

Format-level properties run on synthetic headers; stream-level ones on real
streams of a tiny RDC model, including payloads forged with valid CRCs that go
all the way into CompressAI's rANS decoder.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import replace

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compressai_rdc import codec, container
from compressai_rdc.container import (
    BitstreamError,
    CorruptBitstreamError,
    EntropyCheck,
    EntropyParameterMismatchError,
    ForeignBitstreamError,
    StreamHeader,
    TruncatedBitstreamError,
    UnsupportedBitstreamError,
    pack,
    read_header,
    unpack,
)
from compressai_rdc.models import RDCVersatile

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
#: examples that run the model decoder (each takes milliseconds)
FUZZ_MODEL = settings(FUZZ, max_examples=40)


# -----------------------------------------------------------------------------
# synthetic containers
# -----------------------------------------------------------------------------
@st.composite
def containers(draw):
    batch = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 6))
    tags = sorted(draw(st.lists(st.integers(0, groups), min_size=groups, max_size=groups)))
    strings = [[draw(st.binary(max_size=40)) for _ in range(batch)] for _ in range(groups)]
    keys = draw(st.lists(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True), max_size=4, unique=True))
    controls = {k: draw(st.floats(-1e6, 1e6, allow_nan=False, width=32)) for k in keys}
    version = draw(st.sampled_from(container.READ_VERSIONS))
    # format 4 marks the last controls as refinement-only (only in a stream with refinement layers)
    marked = draw(st.integers(0, min(len(keys), container.MAX_REFINEMENT_CONTROLS))) if version >= 4 and max(tags) else 0
    h, w = draw(st.integers(1, 300)), draw(st.integers(1, 300))
    pad = draw(st.sampled_from([(0, (-w) % 64, 0, (-h) % 64), ((-w) % 64 // 2, (-w) % 64 - (-w) % 64 // 2, (-h) % 64, 0)]))
    header = StreamHeader(
        model_name=draw(st.from_regex(r"[a-z][a-z0-9.-]{0,20}", fullmatch=True)),
        weights_hash=draw(st.binary(min_size=8, max_size=8)),
        batch=batch, height=h, width=w, pad=pad,
        shape=((h + pad[2] + pad[3]) // 64, (w + pad[0] + pad[1]) // 64),
        controls=controls, layers=tuple(tags), version=version, refinement_controls=marked,
    )
    return header, strings


@FUZZ
@given(containers())
def test_pack_unpack_round_trip(hs):
    header, strings = hs
    data = pack(header, strings)
    got, got_strings = unpack(data)
    assert got_strings == strings
    for f in ("model_name", "batch", "height", "width", "pad", "shape", "layers", "version", "refinement_controls"):
        assert getattr(got, f) == getattr(header, f), f
    assert got.weights_hash == header.weights_hash[: container.HASH_BYTES[header.version]]
    assert got.controls == pytest.approx(header.controls)
    assert pack(got, got_strings) == data  # a read header writes the same bytes
    assert got.total_size == len(data)


@FUZZ
@given(containers(), st.data())
def test_every_truncation_raises_truncated(hs, data):
    blob = pack(*hs)
    cut = data.draw(st.integers(0, len(blob) - 1))
    with pytest.raises(TruncatedBitstreamError):
        unpack(blob[:cut])


@FUZZ
@given(containers(), st.data())
def test_every_single_byte_change_is_detected(hs, data):
    blob = bytearray(pack(*hs))
    i = data.draw(st.integers(0, len(blob) - 1))
    blob[i] ^= data.draw(st.integers(1, 255))
    with pytest.raises(BitstreamError):
        unpack(bytes(blob))


@FUZZ
@given(containers(), st.binary(min_size=1, max_size=16))
def test_trailing_bytes_are_corrupt(hs, extra):
    with pytest.raises(CorruptBitstreamError, match="unexpected bytes"):
        unpack(pack(*hs) + extra)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_raise_typed_errors_only(blob):
    with pytest.raises(BitstreamError):
        unpack(blob)
    with pytest.raises(BitstreamError):
        unpack(container.MAGIC + blob)


def _forge(body: bytes) -> bytes:
    """A header body with a valid CRC (a hostile writer can compute it)."""
    return body + struct.pack("<I", zlib.crc32(body))


def _body(batch=1, h=64, w=64, pad=(0, 0, 0, 0), shape=(1, 1), groups=1, tags=None, lengths=None, version=1, flags=0):
    name = b"tiny"
    out = container.MAGIC + struct.pack("<BBB", version, flags, len(name)) + name + bytes(8)
    out += struct.pack("<HHH4H", batch, h, w, *pad)
    out += struct.pack(f"<B{len(shape)}I", len(shape), *shape) + b"\x00"
    tags = tags if tags is not None else [0] * groups
    out += struct.pack(f"<B{len(tags)}B", groups, *tags)
    lengths = lengths if lengths is not None else [0] * (groups * batch)
    for n in lengths:
        out += struct.pack("<II", n, 0)
    return out


def _body3(batch=1, h=64, w=64, pad=(0, 0, 0, 0), shape=(1, 1), groups=1, tags=None, lengths=None, version=3,
           controls=b"\x00", mask=None, pad_raw=None):
    """A format-3 header body, written here by hand (not by :func:`pack`)."""
    v = container.varint
    name = b"tiny"
    out = container.MAGIC + bytes([version, len(name)]) + name + bytes(4)
    out += v(batch) + v(h) + v(w)
    out += bytes([mask if mask is not None else sum(1 << i for i, p in enumerate(pad) if p)])
    out += pad_raw if pad_raw is not None else b"".join(v(p) for p in pad if p)
    out += bytes([len(shape)]) + b"".join(v(x) for x in shape) + controls
    tags = tags if tags is not None else [0] * groups
    out += bytes([groups, *tags])
    lengths = lengths if lengths is not None else [0] * (groups * batch)
    out += b"".join(v(n) for n in lengths)
    out += bytes(4 * len(set(tags))) + b"\x00"  # layer CRCs (payload not reached), no entropy checks
    return out


HOSTILE = [
        (dict(batch=0), CorruptBitstreamError, "batch size"),
        (dict(batch=65535), CorruptBitstreamError, "batch size"),
        (dict(h=0), CorruptBitstreamError, "height"),
        (dict(h=65535, w=65535), CorruptBitstreamError, "height"),
        (dict(h=16384, w=16384), CorruptBitstreamError, "pixels"),
        (dict(pad=(0, 5000, 0, 0)), CorruptBitstreamError, "padding"),
        (dict(shape=(4294967295, 4294967295)), CorruptBitstreamError, "shape"),
        (dict(groups=0, tags=[]), CorruptBitstreamError, "groups"),
        (dict(groups=2, tags=[2, 1]), CorruptBitstreamError, "non-decreasing"),
        (dict(lengths=[2**31]), CorruptBitstreamError, "length"),
        (dict(lengths=[2**29]), TruncatedBitstreamError, "cut short"),
        (dict(version=9), UnsupportedBitstreamError, "version 9"),
]


@pytest.mark.parametrize("kwargs, error, match", HOSTILE + [(dict(flags=1), UnsupportedBitstreamError, "flags")])
def test_hostile_headers_with_valid_crc_are_bounded(kwargs, error, match):
    with pytest.raises(error, match=match):
        unpack(_forge(_body(**kwargs)))


@pytest.mark.parametrize(
    "kwargs, error, match",
    HOSTILE + [
        (dict(mask=0x10), CorruptBitstreamError, "padding mask"),
        (dict(mask=0x01, pad_raw=b"\x00"), CorruptBitstreamError, "left padding is flagged non-zero but stored as 0"),
        (dict(controls=b"\x01\xc4rate"), CorruptBitstreamError, "value encoding 3"),
        (dict(controls=b"\x01\x00"), CorruptBitstreamError, "control name length 0"),
        (dict(controls=b"\x02\x84rate\x84rate"), CorruptBitstreamError, "appears twice"),
        (dict(controls=b"\x11"), CorruptBitstreamError, "control count 17 exceeds 16"),
        (dict(shape=(1,) * 9), CorruptBitstreamError, "shape length 9 exceeds 8"),
    ],
)
def test_hostile_format3_headers_with_valid_crc_are_bounded(kwargs, error, match):
    with pytest.raises(error, match=match):
        unpack(_forge(_body3(**kwargs)))


@pytest.mark.parametrize(
    "raw, error, match",
    [
        (b"\x80\x00", CorruptBitstreamError, "not minimal"),
        (b"\xff\xff\xff\xff\x7f", CorruptBitstreamError, "exceeds 4294967295"),
        (b"\x80\x80\x80\x80\x80\x01", CorruptBitstreamError, "longer than 5 bytes"),
        (b"\x80", TruncatedBitstreamError, "batch size"),
    ],
)
def test_format3_varints_are_minimal_and_bounded(raw, error, match):
    body = container.MAGIC + bytes([3, 4]) + b"tiny" + bytes(4) + raw
    with pytest.raises(error, match=match):
        read_header(body + bytes(64) if error is CorruptBitstreamError else body)


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 16383, 16384, 2**21, 2**32 - 1])
def test_varint_round_trip(n):
    b = container.varint(n)
    assert len(b) == max(1, (n.bit_length() + 6) // 7)
    r = container._Reader(b)
    assert r.varint("x") == n and r.pos == len(b)


def test_varint_refuses_out_of_range():
    for bad in (-1, 2**32):
        with pytest.raises(CorruptBitstreamError, match="varint"):
            container.varint(bad)


@pytest.mark.parametrize(
    "value, size",
    [(0.0, 0), (-0.0, 2), (1.0, 2), (3.5, 2), (-2.0, 2), (65504.0, 2), (0.1, 4), (1e5, 4), (2.37, 4), (-3.4e38, 4)],
)
def test_format3_controls_take_the_smallest_exact_encoding(value, size):
    h = StreamHeader(model_name="m", weights_hash=bytes(8), batch=1, height=8, width=8, pad=(0, 0, 0, 0), shape=(1,),
                     layers=(0,), controls={"rate": value})
    h0 = replace(h, controls={})
    blob = pack(h, [[b"x"]])
    assert len(blob) - len(pack(h0, [[b"x"]])) == 1 + 4 + size  # tag byte, key, value
    got = read_header(blob).controls["rate"]
    assert got == struct.unpack("<f", struct.pack("<f", value))[0] and str(got) == str(struct.unpack("<f", struct.pack("<f", value))[0])


def test_controls_beyond_float32_are_refused():
    h = StreamHeader(model_name="m", weights_hash=bytes(8), batch=1, height=8, width=8, pad=(0, 0, 0, 0), shape=(1,),
                     layers=(0,), controls={"rate": 1e39})
    for version in container.READ_VERSIONS:
        with pytest.raises(CorruptBitstreamError, match="does not fit a float32"):
            pack(replace(h, version=version), [[b"x"]])


def test_format3_layer_crcs_cover_their_layers_only():
    h = StreamHeader(model_name="m", weights_hash=bytes(8), batch=2, height=8, width=8, pad=(0, 0, 0, 0), shape=(1,),
                     layers=(0, 0, 1, 2))
    strings = [[b"ab", b"c"], [b"d", b""], [b"ef", b"g"], [b"h", b"ij"]]
    blob = pack(h, strings)
    got = read_header(blob)
    assert got.crcs == () and got.layer_crcs == (zlib.crc32(b"abcd"), zlib.crc32(b"efg"), zlib.crc32(b"hij"))
    for i, layer in ((0, 0), (3, 0), (4, 1), (6, 1), (7, 2), (9, 2)):  # one payload byte of each layer
        raw = bytearray(blob)
        raw[got.header_size + i] ^= 1
        with pytest.raises(CorruptBitstreamError, match=f"layer {layer}"):
            unpack(bytes(raw))


def test_foreign_and_non_bytes_input():
    with pytest.raises(ForeignBitstreamError, match="magic"):
        read_header(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(ForeignBitstreamError, match="bytes"):
        read_header("RDCs")  # type: ignore[arg-type]
    with pytest.raises(TruncatedBitstreamError):
        read_header(b"RD")


# -----------------------------------------------------------------------------
# real streams of a tiny model
# -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    net = RDCVersatile(N=16, M=16, levels=4, residual_N=8, residual_M=8, residual_layers=2).eval()
    net.update(force=True)
    x = torch.rand(1, 3, 40, 56)
    return net, x, net.encode(x, rate=2.0)


@FUZZ_MODEL
@given(st.data())
def test_mutated_real_streams_raise_typed_errors(tiny, data):
    net, _, blob = tiny
    blob = bytearray(blob)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] = data.draw(st.integers(0, 255))
    try:
        out = codec.decode(bytes(blob), net)
    except BitstreamError:
        return
    assert bytes(blob) == tiny[2] and out.shape == (1, 3, 40, 56)  # only an unchanged stream decodes


@FUZZ_MODEL
@given(st.data())
def test_forged_payloads_with_valid_crcs_never_crash(tiny, data):
    """Garbage that passes every CRC reaches the rANS decoder: it must return a
    finite image of the announced size (garbage in, garbage out) or a typed error;
    a forged z substream changes the entropy parameters, which the stored check
    value refuses (EntropyParameterMismatchError)."""
    net, x, blob = tiny
    header, strings = unpack(blob)
    forged = [[data.draw(st.binary(max_size=64)) for _ in g] for g in strings]
    try:
        out = codec.decode(pack(header, forged), net)
    except EntropyParameterMismatchError as exc:
        assert "differ from the encoder's" in str(exc)
        return
    except CorruptBitstreamError as exc:
        assert "NaN/inf" in str(exc)
        return
    assert out.shape == x.shape and torch.isfinite(out).all()


@FUZZ_MODEL
@given(st.data())
def test_truncated_real_streams(tiny, data):
    net, _, blob = tiny
    cut = data.draw(st.integers(0, len(blob) - 1))
    with pytest.raises(TruncatedBitstreamError):
        codec.decode(blob[:cut], net)


def test_forged_header_fields_checked_against_the_model(tiny):
    net, _, blob = tiny
    header, strings = unpack(blob)
    for change, match in (
        (dict(shape=(40, 40)), "shape"),
        (dict(controls={"rate": 99.0, "residual_rate": 1.0}), "rate"),
        (dict(controls={"rate": 1.0, "residual_rate": 1.0, "beta": 0.5}), "beta"),
    ):
        forged = pack(StreamHeader(**{**header.__dict__, **change}), strings)
        with pytest.raises(BitstreamError, match=match):
            codec.decode(forged, net)


def test_entropy_checks_round_trip_and_are_bounded():
    h = StreamHeader(model_name="m", weights_hash=bytes(8), batch=2, height=8, width=8, pad=(0, 0, 0, 0), shape=(1,),
                     layers=(0,), checks=(EntropyCheck(7, (1, 2**32 - 1)), EntropyCheck(0, (3, 4))), version=2)
    blob = container.pack(h, [[b"a", b"bc"]])
    back, strings = unpack(blob)
    assert back.version == 2 and back.checks == h.checks and strings == [[b"a", b"bc"]]
    v3 = container.pack(replace(h, version=3), [[b"a", b"bc"]])
    assert container.FORMAT_VERSION == 4 and read_header(v3).checks == h.checks and unpack(v3)[1] == strings
    v1 = container.pack(replace(h, checks=(), version=1), [[b"a", b"bc"]])
    assert len(v1) == len(blob) - 1 - 2 * 12 and read_header(v1).version == 1 and read_header(v1).checks == ()
    for change, match in ((dict(checks=(EntropyCheck(1, (1,)),)), "2 image CRCs"),
                          (dict(checks=(EntropyCheck(1, (1, 2)),) * 9), "at most 8"),
                          (dict(checks=(EntropyCheck(2**32, (1, 2)),)), "uint32"),
                          (dict(version=1), "version 1 has no entropy-parameter checks")):
        with pytest.raises(CorruptBitstreamError, match=match):
            container.pack(replace(h, **change), [[b"a", b"bc"]])
    raw = bytearray(blob)
    n_at = read_header(blob).header_size - 4 - 2 * (4 + 8)
    assert raw[n_at - 1] == 2  # the check count follows the substream table
    raw[n_at - 1] = 9
    raw[read_header(blob).header_size - 4 : read_header(blob).header_size] = struct.pack("<I", zlib.crc32(bytes(raw[: read_header(blob).header_size - 4])))
    with pytest.raises(CorruptBitstreamError, match="at most 8"):
        read_header(bytes(raw))


# -----------------------------------------------------------------------------
# format 3 against format 2 on real streams
# -----------------------------------------------------------------------------
def test_format2_streams_still_decode_to_the_same_image(tiny):
    net, _, blob = tiny
    header, strings = unpack(blob)
    assert header.version == container.FORMAT_VERSION == 4
    v2 = pack(replace(header, version=2, weights_hash=codec.weights_hash(net)), strings)
    assert read_header(v2).version == 2
    torch.testing.assert_close(codec.decode(v2, net), codec.decode(blob, net), rtol=0, atol=0)
    torch.testing.assert_close(codec.decode(codec.truncate(v2, 0), net), codec.decode(blob, net, layers=0), rtol=0, atol=0)
    assert read_header(codec.truncate(v2, 0)).version == 2  # truncation keeps the stream's format


def test_format3_header_is_smaller_by_the_fields_it_compacts(tiny):
    """Format 3 saves: flags 1, hash 4, B/H/W 3 (one byte each here), padding 8 - 1 (no padding: the mask
    only), shape 2 x (4 - 1), two controls at float16 2 x 2, and per substream 8 - 1 bytes
    (one-byte lengths, no CRC) less 4 per layer CRC."""
    net, _, blob = tiny
    header, strings = unpack(blob)
    n_sub, n_layers = len(header.layers) * header.batch, len(set(header.layers))
    v2 = pack(replace(header, version=2, weights_hash=codec.weights_hash(net)), strings)
    h2, h3 = read_header(v2), read_header(blob)
    assert max(max(g) for g in h3.lengths) < 128 and h3.pad != (0, 0, 0, 0)  # the sizes the count below assumes
    pad_bytes = 1 + sum(1 for p in h3.pad if p)
    saved = 1 + 4 + 3 + (8 - pad_bytes) + 2 * 3 + 2 * 2 + 7 * n_sub - 4 * n_layers
    assert h2.header_size - h3.header_size == saved
    assert len(v2) - len(blob) == saved


def test_format3_truncation_keeps_the_kept_layers_crcs(tiny):
    net, _, blob = tiny
    h = read_header(blob)
    for k in range(h.num_layers + 1):
        t = read_header(codec.truncate(blob, k))
        assert t.layer_crcs == h.layer_crcs[: k + 1] and t.layers == tuple(x for x in h.layers if x <= k)


# -----------------------------------------------------------------------------
# format 4: the refinement layers' header fields
# -----------------------------------------------------------------------------
def test_format4_truncation_to_the_base_is_the_base_encode(tiny):
    """A stream cut to layer 0 without a model is byte for byte the stream an encode with
    ``layers=0`` writes: residual_rate and the residual's entropy check go with the layers."""
    net, x, blob = tiny
    h = read_header(blob)
    assert h.version == 4 and list(h.controls) == ["rate", "residual_rate"] and len(h.checks) == 2
    assert (h.refinement_controls, h.refinement_checks) == (1, 1)
    base = net.encode(x, rate=2.0, layers=0)
    hb = read_header(base)
    assert list(hb.controls) == ["rate"] and len(hb.checks) == 1 and (hb.refinement_controls, hb.refinement_checks) == (0, 0)
    assert codec.truncate(blob, 0) == base
    assert read_header(codec.truncate(blob, 1)).controls == h.controls  # a kept layer keeps its fields
    torch.testing.assert_close(codec.decode(base, net), codec.decode(blob, net, beta=1.0), rtol=0, atol=0)
    # format 3 kept residual_rate and both checks at β = 1: 1 + 13 + 2 and 4 + 4 bytes more
    v3 = pack(replace(hb, version=3, controls=h.controls, checks=h.checks), unpack(base)[1])
    assert len(v3) - len(base) == (1 + 13 + 2) + (4 + 4)
    torch.testing.assert_close(codec.decode(v3, net), codec.decode(base, net), rtol=0, atol=0)


def test_format4_refinement_marks_are_checked(tiny):
    net, x, blob = tiny
    header, strings = unpack(blob)
    base_header, base_strings = unpack(net.encode(x, rate=2.0, layers=0))
    cases = (
        # the residual's fields stored but not marked, or a base control marked
        (header, dict(refinement_controls=0), CorruptBitstreamError, r"marks controls \[\]"),
        (header, dict(controls={"residual_rate": 2.0, "rate": 2.0}), CorruptBitstreamError, r"marks controls \['rate'\]"),
        (header, dict(refinement_checks=0), CorruptBitstreamError, "marks 0 entropy-parameter checks"),
        (header, dict(refinement_checks=2), CorruptBitstreamError, "marks 2 entropy-parameter checks"),
        # a β = 1 stream holding the residual's rate, or missing the primary's
        (base_header, dict(controls={"rate": 2.0, "residual_rate": 2.0}), CorruptBitstreamError, "differ"),
        (base_header, dict(controls={}), CorruptBitstreamError, "differ"),
        # format 3 stores every control
        (base_header, dict(version=3), CorruptBitstreamError, "differ"),
    )
    for h, change, error, match in cases:
        forged = pack(replace(h, **change), base_strings if h is base_header else strings)
        with pytest.raises(error, match=match):
            codec.decode(forged, net)
    for change, match in ((dict(refinement_controls=3), "refinement-only controls of 2"),
                          (dict(refinement_checks=3), "refinement-layer checks of 2")):
        with pytest.raises(CorruptBitstreamError, match=match):
            pack(replace(header, **change), strings)
    with pytest.raises(CorruptBitstreamError, match="without refinement layers"):
        pack(replace(base_header, controls={"rate": 2.0, "residual_rate": 2.0}, refinement_controls=1), base_strings)
    with pytest.raises(CorruptBitstreamError, match="format 3 marks no"):
        container.validate_header(replace(header, version=3))
    # formats 1-3 have no marks: writing one of them keeps every field and drops the marks
    assert read_header(pack(replace(header, version=3), strings)).refinement_controls == 0


def test_format4_count_bytes_carry_the_marks():
    h = StreamHeader(model_name="m", weights_hash=bytes(4), batch=1, height=8, width=8, pad=(0, 0, 0, 0), shape=(1,),
                     layers=(0, 1), controls={"a": 0.0, "b": 0.0}, checks=(EntropyCheck(1, (2,)), EntropyCheck(3, (4,))),
                     refinement_controls=1, refinement_checks=1)
    blob = pack(h, [[b"x"], [b"y"]])
    got = read_header(blob)
    assert (got.refinement_controls, got.refinement_checks) == (1, 1) and got.refinement_keys == ("b",)
    base = got.base_fields()
    assert base.controls == {"a": 0.0} and base.checks == (EntropyCheck(1, (2,)),)
    assert (base.refinement_controls, base.refinement_checks, base.refinement_keys) == (0, 0, ())
    v3 = pack(replace(h, version=3), [[b"x"], [b"y"]])
    assert len(v3) == len(blob)  # the marks live in spare bits of the two count bytes
    ctl_at = 4 + 1 + 2 + 4 + 3 + 1 + 2  # magic, version, name, hash, B/H/W, padding mask, shape
    assert blob[ctl_at] == 2 | 1 << 5 and v3[ctl_at] == 2
    chk_at = got.header_size - 4 - 2 * 8 - 1
    assert blob[chk_at] == 2 | 1 << 4 and v3[chk_at] == 2
    # format 3 reads the same bits as a count: 34 controls, refused
    raw = bytearray(v3)
    raw[ctl_at] = 2 | 1 << 5
    with pytest.raises(CorruptBitstreamError, match="control count 34"):
        read_header(_forge(bytes(raw[: got.header_size - 4])))
