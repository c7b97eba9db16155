"""The compressai-rdc bitstream container: one self-describing byte string per image batch.

A container wraps the substreams a CompressAI model's ``compress`` returns
(``{"strings": [[bytes per image], ...], "shape": ...}``) with everything a
decoder needs to check that the stream is complete, intact and meant for the
model at hand. It knows nothing about neural networks; :mod:`compressai_rdc.codec`
fills it from a model and decodes it again.

Byte layout (format version 2, all integers little-endian)::

    offset  size        field
    ------  ----------  -------------------------------------------------------
    0       4           magic  b"RDCs"
    4       1           format version (2; 1 is read too, see below)
    5       1           flags (0; any other value is unsupported)
    6       1           n = length of the model name (1..128)
    7       n           model name, ASCII (registry key or class path)
    .       8           weights hash: first 8 bytes of sha256 of the state dict
    .       2           B  batch size (1..64)
    .       2, 2        H, W  image height and width before padding (1..16384)
    .       2 x 4       padding left, right, top, bottom (each < 1024)
    .       1           s = number of shape integers (0..8)
    .       4 x s       CompressAI ``shape`` (uint32 each)
    .       1           c = number of control parameters (0..16)
    .       c x (1+k+4) key length k (1..32), key (ASCII identifier), value float32
    .       1           G = number of substream groups (1..64)
    .       G           layer tag per group: 0 = always needed, j >= 1 = belongs
                        to scalable refinement layer j (tags never decrease)
    .       G x B x 8   per substream (group-major, then image): length uint32,
                        CRC32 of its bytes uint32
    .       1           k = number of entropy-parameter checks (0..8; version 2 only)
    .       k x (4+4B)  per check: CRC32 of the entropy coder tables, then per
                        image CRC32 of the scale indexes and means
                        (:mod:`compressai_rdc.entropy_check`; version 2 only)
    .       4           CRC32 of every header byte before this field
    .       sum(len)    payload: the substreams, concatenated in table order

Version 1 (before the fixed-point entropy parameters) has no check field.
It is still parsed (``StreamHeader.version == 1``) so that
:func:`compressai_rdc.codec.decode` can refuse such a stream of a model whose
entropy parameters are now computed differently with
:class:`UnsupportedBitstreamError` (its parameters came from the float path and
could not be reproduced), while models without checks (CompressAI's own)
decode it as before.

The total size must equal header size + sum of substream lengths: shorter input
raises :class:`TruncatedBitstreamError`, longer input
:class:`CorruptBitstreamError`. Every count, size and shape field is bounded
before anything is allocated from it, so hostile input can neither crash the
reader nor make it allocate more than the input's own size.

Dropping refinement layers (:func:`compressai_rdc.codec.truncate`) removes
whole groups with tag > k and rewrites the table; the remaining substreams and
their CRCs are untouched.
"""

from __future__ import annotations

import math
import re
import struct
import zlib
from dataclasses import dataclass, field, replace
from typing import Dict, List, Sequence, Tuple

from compressai_rdc.errors import RDCError

MAGIC = b"RDCs"
FORMAT_VERSION = 2
#: versions :func:`read_header` parses
READ_VERSIONS = (1, 2)

MAX_NAME = 128
MAX_BATCH = 64
MAX_DIM = 16384
MAX_PAD = 1023
#: bound on B x padded H x padded W (the decoder allocates in proportion to it)
MAX_PIXELS = 1 << 26
MAX_SHAPE = 8
MAX_CONTROLS = 16
MAX_KEY = 32
MAX_GROUPS = 64
MAX_SUBSTREAM = 1 << 30
MAX_CHECKS = 8

_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# -----------------------------------------------------------------------------
# Errors
# -----------------------------------------------------------------------------
class BitstreamError(RDCError, ValueError):
    """A byte string is not a decodable compressai-rdc container."""


class TruncatedBitstreamError(BitstreamError):
    """The input ends before the header or a substream is complete."""


class CorruptBitstreamError(BitstreamError):
    """A field is out of range, a checksum does not match, or bytes trail the stream."""


class ForeignBitstreamError(BitstreamError):
    """The stream is intact but was made by another model, other weights, or is no container at all."""


class UnsupportedBitstreamError(BitstreamError):
    """The stream uses a format version or flag this library does not read."""


class EntropyParameterMismatchError(BitstreamError):
    """The entropy parameters (scale indexes, means or coding tables) the decoder
    computed differ from the encoder's check value: decoding would give garbage."""


@dataclass(frozen=True)
class EntropyCheck:
    """A stored check value: ``tables`` CRC32 of the entropy coder's tables,
    ``params`` one CRC32 of the scale indexes and means per image."""

    tables: int
    params: Tuple[int, ...]


# -----------------------------------------------------------------------------
# Header
# -----------------------------------------------------------------------------
Pad = Tuple[int, int, int, int]


@dataclass(frozen=True)
class StreamHeader:
    """Everything in a container except the substream bytes.

    Attributes:
        model_name: registry key of the model (or its class path).
        weights_hash: 8 bytes identifying the exact weights (see
            :func:`compressai_rdc.codec.weights_hash`).
        batch: number of images B.
        height, width: image size before padding.
        pad: ``(left, right, top, bottom)`` padding added before coding.
        shape: CompressAI's ``shape`` from ``compress`` (flattened ints).
        controls: float parameters the decoder needs (e.g. ``{"rate": 3.5}``).
        layers: layer tag of each substream group (0 = base).
        lengths: byte length of each substream, ``lengths[group][image]``.
        crcs: CRC32 of each substream, same indexing.
        checks: entropy-parameter check values, one per hyperprior of the model
            (:mod:`compressai_rdc.entropy_check`); empty for models without.
        version: container format version (written: :data:`FORMAT_VERSION`;
            1 when read from an old stream, which has no checks).
        header_size: bytes before the payload (set when read or written).
    """

    model_name: str
    weights_hash: bytes
    batch: int
    height: int
    width: int
    pad: Pad
    shape: Tuple[int, ...]
    controls: Dict[str, float] = field(default_factory=dict)
    layers: Tuple[int, ...] = ()
    lengths: Tuple[Tuple[int, ...], ...] = ()
    crcs: Tuple[Tuple[int, ...], ...] = ()
    checks: Tuple[EntropyCheck, ...] = ()
    version: int = FORMAT_VERSION
    header_size: int = 0

    @property
    def padded_size(self) -> Tuple[int, int]:
        """``(H + top + bottom, W + left + right)``."""
        left, right, top, bottom = self.pad
        return self.height + top + bottom, self.width + left + right

    @property
    def num_layers(self) -> int:
        """Number of scalable refinement layers present (0 when none)."""
        return max(self.layers, default=0)

    @property
    def payload_size(self) -> int:
        return sum(sum(group) for group in self.lengths)

    @property
    def total_size(self) -> int:
        return self.header_size + self.payload_size


def _fail(cls, msg: str):
    raise cls(msg)


def validate_header(h: StreamHeader) -> None:
    """Check every field of ``h`` against the format's bounds.

    Raises:
        CorruptBitstreamError: naming the field, its value and the valid range.
    """
    C = CorruptBitstreamError
    name = h.model_name
    if not isinstance(name, str) or not (1 <= len(name) <= MAX_NAME) or not name.isascii() or not name.isprintable():
        _fail(C, f"model name {name!r} must be 1..{MAX_NAME} printable ASCII characters")
    if not isinstance(h.weights_hash, (bytes, bytearray)) or len(h.weights_hash) != 8:
        _fail(C, f"weights hash must be 8 bytes, got {h.weights_hash!r}")
    if not (1 <= h.batch <= MAX_BATCH):
        _fail(C, f"batch size {h.batch} is outside 1..{MAX_BATCH}")
    for what, v in (("height", h.height), ("width", h.width)):
        if not (1 <= v <= MAX_DIM):
            _fail(C, f"image {what} {v} is outside 1..{MAX_DIM}")
    if len(h.pad) != 4 or any(not (0 <= p <= MAX_PAD) for p in h.pad):
        _fail(C, f"padding {tuple(h.pad)} must be 4 values in 0..{MAX_PAD}")
    hp, wp = h.padded_size
    if hp > MAX_DIM or wp > MAX_DIM or h.batch * hp * wp > MAX_PIXELS:
        _fail(C, f"padded size {h.batch}x{hp}x{wp} exceeds the bound of {MAX_DIM} per side and {MAX_PIXELS} pixels")
    if len(h.shape) > MAX_SHAPE or any(not (0 <= s <= MAX_DIM) for s in h.shape):
        _fail(C, f"shape {tuple(h.shape)} must have at most {MAX_SHAPE} values in 0..{MAX_DIM}")
    if math.prod(h.shape) > hp * wp:
        _fail(C, f"shape {tuple(h.shape)} holds more elements than the padded image ({hp}x{wp})")
    if len(h.controls) > MAX_CONTROLS:
        _fail(C, f"{len(h.controls)} control parameters; at most {MAX_CONTROLS} are allowed")
    for k, v in h.controls.items():
        if not isinstance(k, str) or not (1 <= len(k) <= MAX_KEY) or not _KEY_RE.match(k):
            _fail(C, f"control name {k!r} must be an identifier of 1..{MAX_KEY} ASCII characters")
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            _fail(C, f"control {k!r} = {v!r} must be a finite number")
    G = len(h.layers)
    if not (1 <= G <= MAX_GROUPS):
        _fail(C, f"{G} substream groups; valid: 1..{MAX_GROUPS}")
    if any(not (0 <= t <= G) for t in h.layers) or any(b < a for a, b in zip(h.layers, h.layers[1:])):
        _fail(C, f"layer tags {tuple(h.layers)} must be non-decreasing values in 0..{G}")
    if len(h.lengths) != G or len(h.crcs) != G or any(len(g) != h.batch for g in (*h.lengths, *h.crcs)):
        _fail(C, f"substream table must hold {G} groups x {h.batch} images")
    for g in h.lengths:
        for n in g:
            if not (0 <= n <= MAX_SUBSTREAM):
                _fail(C, f"substream length {n} is outside 0..{MAX_SUBSTREAM}")
    if h.version not in READ_VERSIONS:
        _fail(UnsupportedBitstreamError, f"container format version {h.version}; valid: {READ_VERSIONS}")
    if h.version == 1 and h.checks:
        _fail(C, "format version 1 has no entropy-parameter checks")
    if len(h.checks) > MAX_CHECKS:
        _fail(C, f"{len(h.checks)} entropy-parameter checks; at most {MAX_CHECKS} are allowed")
    for c in h.checks:
        if len(c.params) != h.batch or any(not (0 <= v < 1 << 32) for v in (c.tables, *c.params)):
            _fail(C, f"entropy-parameter check {c} must hold a table CRC and {h.batch} image CRCs (uint32)")


# -----------------------------------------------------------------------------
# Writing
# -----------------------------------------------------------------------------
def pack(header: StreamHeader, strings: Sequence[Sequence[bytes]]) -> bytes:
    """Serialise ``header`` and ``strings[group][image]`` into container bytes.

    ``header.lengths``/``crcs``/``header_size`` are recomputed from ``strings``;
    ``header.layers`` must give one tag per group.

    Raises:
        CorruptBitstreamError: when a field is out of the format's bounds.
    """
    strings = [[bytes(s) for s in group] for group in strings]
    lengths = tuple(tuple(len(s) for s in group) for group in strings)
    crcs = tuple(tuple(zlib.crc32(s) for s in group) for group in strings)
    header = replace(header, lengths=lengths, crcs=crcs, pad=tuple(int(p) for p in header.pad),
                     shape=tuple(int(s) for s in header.shape), layers=tuple(int(t) for t in header.layers),
                     controls={k: float(v) for k, v in header.controls.items()},
                     checks=tuple(EntropyCheck(int(c.tables), tuple(int(v) for v in c.params)) for c in header.checks))
    validate_header(header)
    name = header.model_name.encode("ascii")
    out = bytearray(MAGIC)
    out += struct.pack("<BBB", header.version, 0, len(name)) + name + bytes(header.weights_hash)
    out += struct.pack("<HHH4H", header.batch, header.height, header.width, *header.pad)
    out += struct.pack(f"<B{len(header.shape)}I", len(header.shape), *header.shape)
    out += struct.pack("<B", len(header.controls))
    for k, v in header.controls.items():
        kb = k.encode("ascii")
        value = struct.unpack("<f", struct.pack("<f", v))[0]
        if not math.isfinite(value):
            _fail(CorruptBitstreamError, f"control {k!r} = {v!r} does not fit a float32")
        out += struct.pack("<B", len(kb)) + kb + struct.pack("<f", v)
    out += struct.pack(f"<B{len(header.layers)}B", len(header.layers), *header.layers)
    for lg, cg in zip(lengths, crcs):
        for n, c in zip(lg, cg):
            out += struct.pack("<II", n, c)
    if header.version >= 2:
        out += struct.pack("<B", len(header.checks))
        for c in header.checks:
            out += struct.pack(f"<I{len(c.params)}I", c.tables, *c.params)
    out += struct.pack("<I", zlib.crc32(bytes(out)))
    for group in strings:
        for s in group:
            out += s
    return bytes(out)


# -----------------------------------------------------------------------------
# Reading
# -----------------------------------------------------------------------------
class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise TruncatedBitstreamError(
                f"stream ends inside the {what} field: needs {end} bytes, got {len(self.data)}"
            )
        out = self.data[self.pos:end]
        self.pos = end
        return out

    def unpack(self, fmt: str, what: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))


def _as_bytes(data) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise ForeignBitstreamError(f"expected container bytes, got {type(data).__name__}")


def read_header(data: bytes) -> StreamHeader:
    """Parse and validate the header of container ``data`` (no payload checks).

    Raises:
        ForeignBitstreamError: the magic number is missing.
        UnsupportedBitstreamError: unknown format version or flags.
        TruncatedBitstreamError: the input ends inside the header.
        CorruptBitstreamError: a field is out of range or the header CRC fails.
    """
    data = _as_bytes(data)
    r = _Reader(data)
    magic = data[:4]
    if len(data) < 4 and MAGIC.startswith(magic):
        raise TruncatedBitstreamError(f"stream of {len(data)} bytes ends inside the magic number")
    if magic != MAGIC:
        raise ForeignBitstreamError(f"not a compressai-rdc container: magic {magic!r}, expected {MAGIC!r}")
    r.take(4, "magic")
    version, flags, name_len = r.unpack("BBB", "version/flags/name length")
    if version not in READ_VERSIONS:
        raise UnsupportedBitstreamError(f"container format version {version}; this library reads versions {READ_VERSIONS}")
    if flags != 0:
        raise UnsupportedBitstreamError(f"container flags 0x{flags:02x} are not supported (expected 0)")
    if not (1 <= name_len <= MAX_NAME):
        raise CorruptBitstreamError(f"model name length {name_len} is outside 1..{MAX_NAME}")
    name_b = r.take(name_len, "model name")
    try:
        name = name_b.decode("ascii")
    except UnicodeDecodeError:
        raise CorruptBitstreamError(f"model name {name_b!r} is not ASCII") from None
    whash = r.take(8, "weights hash")
    batch, height, width, *pad = r.unpack("HHH4H", "image size")
    (n_shape,) = r.unpack("B", "shape length")
    if n_shape > MAX_SHAPE:
        raise CorruptBitstreamError(f"shape length {n_shape} exceeds {MAX_SHAPE}")
    shape = r.unpack(f"{n_shape}I", "shape")
    (n_ctl,) = r.unpack("B", "control count")
    if n_ctl > MAX_CONTROLS:
        raise CorruptBitstreamError(f"{n_ctl} control parameters; at most {MAX_CONTROLS} are allowed")
    controls: Dict[str, float] = {}
    for _ in range(n_ctl):
        (klen,) = r.unpack("B", "control name length")
        if not (1 <= klen <= MAX_KEY):
            raise CorruptBitstreamError(f"control name length {klen} is outside 1..{MAX_KEY}")
        kb = r.take(klen, "control name")
        key = kb.decode("latin-1")
        if not _KEY_RE.match(key):
            raise CorruptBitstreamError(f"control name {kb!r} is not an ASCII identifier")
        if key in controls:
            raise CorruptBitstreamError(f"control {key!r} appears twice")
        (controls[key],) = r.unpack("f", f"control {key!r}")
    (n_groups,) = r.unpack("B", "substream group count")
    if not (1 <= n_groups <= MAX_GROUPS):
        raise CorruptBitstreamError(f"{n_groups} substream groups; valid: 1..{MAX_GROUPS}")
    layers = r.unpack(f"{n_groups}B", "layer tags")
    if not (1 <= batch <= MAX_BATCH):  # bound before reading a table sized by it
        raise CorruptBitstreamError(f"batch size {batch} is outside 1..{MAX_BATCH}")
    table = r.unpack(f"{2 * n_groups * batch}I", "substream table")
    checks: List[EntropyCheck] = []
    if version >= 2:
        (n_checks,) = r.unpack("B", "entropy check count")
        if n_checks > MAX_CHECKS:
            raise CorruptBitstreamError(f"{n_checks} entropy-parameter checks; at most {MAX_CHECKS} are allowed")
        for _ in range(n_checks):
            tables, *params = r.unpack(f"{1 + batch}I", "entropy check")
            checks.append(EntropyCheck(tables, tuple(params)))
    header_end = r.pos
    (crc,) = r.unpack("I", "header CRC")
    if zlib.crc32(data[:header_end]) != crc:
        raise CorruptBitstreamError("header CRC32 mismatch: the header bytes are corrupt")
    lengths = tuple(tuple(table[2 * (g * batch + b)] for b in range(batch)) for g in range(n_groups))
    crcs = tuple(tuple(table[2 * (g * batch + b) + 1] for b in range(batch)) for g in range(n_groups))
    header = StreamHeader(
        model_name=name, weights_hash=whash, batch=batch, height=height, width=width, pad=tuple(pad),
        shape=tuple(shape), controls=controls, layers=tuple(layers), lengths=lengths, crcs=crcs,
        checks=tuple(checks), version=version, header_size=r.pos,
    )
    validate_header(header)
    return header


def unpack(data: bytes) -> Tuple[StreamHeader, List[List[bytes]]]:
    """Parse container ``data`` into its header and ``strings[group][image]``.

    Every substream's CRC32 is verified.

    Raises:
        BitstreamError: (a subclass of) for any malformed input; see :func:`read_header`.
    """
    data = _as_bytes(data)
    header = read_header(data)
    total = header.total_size
    if len(data) < total:
        raise TruncatedBitstreamError(
            f"stream is {len(data)} bytes but its header announces {total} "
            f"({header.header_size} header + {header.payload_size} payload): it was cut short"
        )
    if len(data) > total:
        raise CorruptBitstreamError(f"{len(data) - total} unexpected bytes after the end of the stream ({total} bytes)")
    pos = header.header_size
    strings: List[List[bytes]] = []
    for g, (lg, cg) in enumerate(zip(header.lengths, header.crcs)):
        group = []
        for b, (n, c) in enumerate(zip(lg, cg)):
            s = data[pos:pos + n]
            pos += n
            if zlib.crc32(s) != c:
                raise CorruptBitstreamError(f"CRC32 mismatch in substream {g} (image {b}): its bytes are corrupt")
            group.append(s)
        strings.append(group)
    return header, strings


__all__ = [
    "BitstreamError",
    "CorruptBitstreamError",
    "EntropyCheck",
    "EntropyParameterMismatchError",
    "FORMAT_VERSION",
    "ForeignBitstreamError",
    "MAGIC",
    "StreamHeader",
    "TruncatedBitstreamError",
    "UnsupportedBitstreamError",
    "pack",
    "read_header",
    "unpack",
    "validate_header",
]
