"""The compressai-rdc bitstream container: one self-describing byte string per image batch.

A container wraps the substreams a CompressAI model's ``compress`` returns
(``{"strings": [[bytes per image], ...], "shape": ...}``) with everything a
decoder needs to check that the stream is complete, intact and meant for the
model at hand. It knows nothing about neural networks; :mod:`compressai_rdc.codec`
fills it from a model and decodes it again.

Byte layout (format version 4, the one written; integers little-endian,
"varint" = unsigned LEB128 of at most 5 bytes, minimal, value < 2**32)::

    field                     size        content
    ------------------------  ----------  -------------------------------------------
    magic                     4           b"RDCs"
    format version            1           4 (1 to 3 are read too, see below)
    model name                1 + n       n (1..128), ASCII registry key or class path
    weights hash              4           first 4 bytes of sha256 of the state dict
    B, H, W                   3 varints   batch (1..64), height and width before
                                          padding (1..16384)
    padding                   1 + varints bit i set when pad[i] (left, right, top,
                                          bottom) is non-zero; then those values
                                          (each 1..1023); bits 4-7 are zero
    shape                     1 + varints s (0..8), then CompressAI ``shape``
    controls                  1 + ...     c (0..16) in bits 0-4 and m (0..min(c, 7)) in
                                          bits 5-7: the last m controls are needed
                                          only by refinement layers; per control one byte: key length
                                          k (1..32) in bits 0-5 and the value's
                                          encoding in bits 6-7 (0 = float32,
                                          1 = float16, 2 = zero, 3 invalid), the key
                                          (ASCII identifier), the value (4, 2 or 0 bytes)
    groups                    1 + G       G (1..64) and a layer tag per group: 0 =
                                          always needed, j >= 1 = belongs to scalable
                                          refinement layer j (tags never decrease)
    substream lengths         G x B       varints, group-major, then image
    layer CRCs                4 per tag   CRC32 of each layer's substreams
                                          (the groups with that tag, concatenated in
                                          table order), one per distinct tag, ascending
    entropy checks            1 + k(4+4B) k (0..8) in bits 0-3 and n (0..k) in bits 4-7:
                                          the last n checks belong to refinement
                                          layers; per check the CRC32 of the entropy
                                          coder tables, then per image the CRC32 of the
                                          scale indexes and means
                                          (:mod:`compressai_rdc.entropy_check`)
    header CRC                4           CRC32 of every header byte before it
    payload                   sum(len)    the substreams, concatenated in table order

Format 4 is format 3 plus the two refinement counts (m and n, zero when
the stream has no refinement layer): the header fields that only refinement
layers need (RDC's ``residual_rate`` and the residual branch's entropy check)
are marked, so a stream without those layers leaves them out and
:func:`compressai_rdc.codec.truncate` drops them with the layers, no model
needed (a 256x256 ``rdc-versatile`` image at β = 1: 63 header bytes instead of
79). Version 3 (written before format 4) is format 4 with m = n = 0 and every
control stored; it is read and written (``StreamHeader.version == 3``).

Format 3 is format 2 made compact (a 256x256 ``rdc-versatile`` image at
β = 1: 79 header bytes instead of 111): varints instead of fixed-width
integers, padding and zero/float16 control values in fewer bytes, a 4-byte
weights hash, one CRC per refinement layer instead of a length and a CRC per
substream, no flags byte. A decode that reads only some layers can still
verify every byte it reads, and :func:`compressai_rdc.codec.truncate` keeps the
CRCs of the layers it keeps.

Version 2 (written before format 3) has a flags byte after the version (0),
an 8-byte weights hash, B/H/W and padding as uint16, shape values as uint32,
controls as key length, key, float32, and per substream a uint32 length and
the CRC32 of its bytes. It is read and written (``StreamHeader.version == 2``).
Version 1 (before the fixed-point entropy parameters) is version 2 without
the entropy checks. It is still parsed (``StreamHeader.version == 1``) so that
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
#: the version :func:`pack` writes unless a header asks for another
FORMAT_VERSION = 4
#: versions :func:`read_header` parses (and :func:`pack` writes)
READ_VERSIONS = (1, 2, 3, 4)
#: bytes of the weights hash each format version stores (the leading bytes of
#: :func:`compressai_rdc.codec.weights_hash`)
HASH_BYTES = {1: 8, 2: 8, 3: 4, 4: 4}
#: format 4: bound on the controls marked as refinement-only (3 bits of the count byte)
MAX_REFINEMENT_CONTROLS = 7

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
MAX_VARINT = (1 << 32) - 1
#: format 3 control value encodings (bits 6-7 of the key-length byte)
_F32, _F16, _ZERO = 0, 1, 2

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
        weights_hash: bytes identifying the exact weights (see
            :func:`compressai_rdc.codec.weights_hash`); :func:`pack` stores the
            first :data:`HASH_BYTES` ``[version]`` of them (8, or 4 from format 3 on).
        batch: number of images B.
        height, width: image size before padding.
        pad: ``(left, right, top, bottom)`` padding added before coding.
        shape: CompressAI's ``shape`` from ``compress`` (flattened ints).
        controls: float parameters the decoder needs (e.g. ``{"rate": 3.5}``).
        layers: layer tag of each substream group (0 = base).
        lengths: byte length of each substream, ``lengths[group][image]``.
        crcs: CRC32 of each substream, same indexing (formats 1 and 2; empty from format 3 on).
        layer_crcs: formats 3-4: CRC32 of each refinement layer's substreams (the
            groups with that tag, concatenated in table order), one per distinct
            tag in ascending order; empty in formats 1 and 2.
        checks: entropy-parameter check values, one per hyperprior of the model
            (:mod:`compressai_rdc.entropy_check`); empty for models without.
        refinement_controls: format 4: how many of the last ``controls`` only
            refinement layers need (0 in a stream without refinement layers and
            in formats 1-3).
        refinement_checks: format 4: how many of the last ``checks`` belong to
            refinement layers (same rule).
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
    layer_crcs: Tuple[int, ...] = ()
    checks: Tuple[EntropyCheck, ...] = ()
    refinement_controls: int = 0
    refinement_checks: int = 0
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
    def refinement_keys(self) -> Tuple[str, ...]:
        """Format 4: the controls marked as only the refinement layers' (the last ``refinement_controls``)."""
        keys = tuple(self.controls)
        return keys[len(keys) - self.refinement_controls:] if self.refinement_controls else ()

    def base_fields(self) -> "StreamHeader":
        """This header without the controls and checks marked as the refinement layers'
        (what a stream cut to its base layer keeps; unchanged in formats 1-3)."""
        kept = list(self.controls.items())[: len(self.controls) - self.refinement_controls]
        return replace(self, controls=dict(kept), refinement_controls=0,
                       checks=self.checks[: len(self.checks) - self.refinement_checks], refinement_checks=0)

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
    if h.version not in READ_VERSIONS:
        _fail(UnsupportedBitstreamError, f"container format version {h.version!r}; valid: {READ_VERSIONS}")
    name = h.model_name
    if not isinstance(name, str) or not (1 <= len(name) <= MAX_NAME) or not name.isascii() or not name.isprintable():
        _fail(C, f"model name {name!r} must be 1..{MAX_NAME} printable ASCII characters")
    n_hash = HASH_BYTES[h.version]
    if not isinstance(h.weights_hash, (bytes, bytearray)) or len(h.weights_hash) != n_hash:
        _fail(C, f"weights hash must be {n_hash} bytes in format {h.version}, got {h.weights_hash!r}")
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
    if len(h.lengths) != G or any(len(g) != h.batch for g in h.lengths):
        _fail(C, f"substream table must hold {G} groups x {h.batch} images")
    if h.version >= 3:
        n_tags = len(set(h.layers))
        if h.crcs or len(h.layer_crcs) != n_tags or any(not (0 <= c < 1 << 32) for c in h.layer_crcs):
            _fail(C, f"format {h.version} holds one CRC32 per layer ({n_tags}) and no substream CRCs")
    elif h.layer_crcs or len(h.crcs) != G or any(len(g) != h.batch for g in h.crcs):
        _fail(C, f"format {h.version} holds a CRC32 per substream ({G} groups x {h.batch} images) and no layer CRCs")
    for g in h.lengths:
        for n in g:
            if not (0 <= n <= MAX_SUBSTREAM):
                _fail(C, f"substream length {n} is outside 0..{MAX_SUBSTREAM}")
    if h.version == 1 and h.checks:
        _fail(C, "format version 1 has no entropy-parameter checks")
    if len(h.checks) > MAX_CHECKS:
        _fail(C, f"{len(h.checks)} entropy-parameter checks; at most {MAX_CHECKS} are allowed")
    if h.version < 4 and (h.refinement_controls or h.refinement_checks):
        _fail(C, f"format {h.version} marks no refinement-only controls or checks")
    if not (0 <= h.refinement_controls <= min(len(h.controls), MAX_REFINEMENT_CONTROLS)):
        _fail(C, f"{h.refinement_controls} refinement-only controls of {len(h.controls)}; valid: 0..{min(len(h.controls), MAX_REFINEMENT_CONTROLS)}")
    if not (0 <= h.refinement_checks <= len(h.checks)):
        _fail(C, f"{h.refinement_checks} refinement-layer checks of {len(h.checks)}; valid: 0..{len(h.checks)}")
    if h.num_layers == 0 and (h.refinement_controls or h.refinement_checks):
        _fail(C, "a stream without refinement layers holds no refinement-only controls or checks")
    for c in h.checks:
        if len(c.params) != h.batch or any(not (0 <= v < 1 << 32) for v in (c.tables, *c.params)):
            _fail(C, f"entropy-parameter check {c} must hold a table CRC and {h.batch} image CRCs (uint32)")


# -----------------------------------------------------------------------------
# Writing
# -----------------------------------------------------------------------------
def varint(n: int) -> bytes:
    """Unsigned LEB128 of ``0 <= n <= MAX_VARINT`` (the integers of formats 3-4)."""
    if not (0 <= n <= MAX_VARINT):
        _fail(CorruptBitstreamError, f"{n} does not fit a varint (0..{MAX_VARINT})")
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def layer_crcs(layers: Sequence[int], strings: Sequence[Sequence[bytes]]) -> Tuple[int, ...]:
    """Formats 3-4: the CRC32 per refinement layer: one per distinct tag of ``layers``, ascending."""
    out = []
    for tag in sorted(set(layers)):
        crc = 0
        for t, group in zip(layers, strings):
            if t == tag:
                for s in group:
                    crc = zlib.crc32(s, crc)
        out.append(crc)
    return tuple(out)


def _float32(key: str, value: float) -> float:
    """``value`` rounded to float32 (what the container stores)."""
    try:
        return struct.unpack("<f", struct.pack("<f", value))[0]
    except OverflowError:
        _fail(CorruptBitstreamError, f"control {key!r} = {value!r} does not fit a float32")


def _control_v3(key: str, value: float) -> bytes:
    kb = key.encode("ascii")
    if value == 0.0 and math.copysign(1.0, value) > 0:
        return bytes([len(kb) | _ZERO << 6]) + kb
    try:
        half = struct.pack("<e", value)
    except OverflowError:  # above float16's range: stored as float32
        half = None
    if half is not None and struct.unpack("<e", half)[0] == value:
        return bytes([len(kb) | _F16 << 6]) + kb + half
    return bytes([len(kb) | _F32 << 6]) + kb + struct.pack("<f", value)


def _header_v12(h: StreamHeader) -> bytearray:
    name = h.model_name.encode("ascii")
    out = bytearray(MAGIC)
    out += struct.pack("<BBB", h.version, 0, len(name)) + name + bytes(h.weights_hash)
    out += struct.pack("<HHH4H", h.batch, h.height, h.width, *h.pad)
    out += struct.pack(f"<B{len(h.shape)}I", len(h.shape), *h.shape)
    out += struct.pack("<B", len(h.controls))
    for k, v in h.controls.items():
        out += struct.pack("<B", len(k)) + k.encode("ascii") + struct.pack("<f", v)
    out += struct.pack(f"<B{len(h.layers)}B", len(h.layers), *h.layers)
    for lg, cg in zip(h.lengths, h.crcs):
        for n, c in zip(lg, cg):
            out += struct.pack("<II", n, c)
    return out


def _header_v3(h: StreamHeader) -> bytearray:
    name = h.model_name.encode("ascii")
    out = bytearray(MAGIC)
    out += struct.pack("<BB", h.version, len(name)) + name + bytes(h.weights_hash)
    out += varint(h.batch) + varint(h.height) + varint(h.width)
    out.append(sum(1 << i for i, p in enumerate(h.pad) if p))
    out += b"".join(varint(p) for p in h.pad if p)
    out += bytes([len(h.shape)]) + b"".join(varint(v) for v in h.shape)
    out.append(len(h.controls) | h.refinement_controls << 5)
    for k, v in h.controls.items():
        out += _control_v3(k, v)
    out += bytes([len(h.layers), *h.layers])
    out += b"".join(varint(n) for g in h.lengths for n in g)
    out += struct.pack(f"<{len(h.layer_crcs)}I", *h.layer_crcs)
    return out


def pack(header: StreamHeader, strings: Sequence[Sequence[bytes]]) -> bytes:
    """Serialise ``header`` and ``strings[group][image]`` into container bytes.

    Written in ``header.version`` (default :data:`FORMAT_VERSION`); formats 1-3
    keep every control and check but not format 4's refinement marks.
    ``header.lengths``/``crcs``/``layer_crcs``/``header_size`` are recomputed
    from ``strings``; ``header.layers`` must give one tag per group;
    ``weights_hash`` is cut to the version's :data:`HASH_BYTES`.

    Raises:
        CorruptBitstreamError: when a field is out of the format's bounds.
        UnsupportedBitstreamError: for a version outside :data:`READ_VERSIONS`.
    """
    strings = [[bytes(s) for s in group] for group in strings]
    if header.version in (1, 2, 3):  # these formats mark no refinement-only fields (every field is kept)
        header = replace(header, refinement_controls=0, refinement_checks=0)
    layers = tuple(int(t) for t in header.layers)
    lengths = tuple(tuple(len(s) for s in group) for group in strings)
    v3 = header.version >= 3  # formats 3 and 4; an unknown version is refused by validate_header below
    crcs = () if v3 else tuple(tuple(zlib.crc32(s) for s in group) for group in strings)
    header = replace(header, lengths=lengths, crcs=crcs, layers=layers,
                     controls={k: float(v) for k, v in header.controls.items()},
                     layer_crcs=layer_crcs(layers, strings) if v3 else (),
                     # an unknown version keeps the whole hash; validate_header refuses the version
                     weights_hash=bytes(header.weights_hash)[:HASH_BYTES.get(header.version)],
                     pad=tuple(int(p) for p in header.pad), shape=tuple(int(s) for s in header.shape),
                     checks=tuple(EntropyCheck(int(c.tables), tuple(int(v) for v in c.params)) for c in header.checks))
    validate_header(header)
    header = replace(header, controls={k: _float32(k, v) for k, v in header.controls.items()})
    out = _header_v3(header) if v3 else _header_v12(header)
    if header.version >= 2:
        out += struct.pack("<B", len(header.checks) | header.refinement_checks << 4)
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

    def varint(self, what: str) -> int:
        """One format-3 varint (minimal LEB128, at most 5 bytes, < 2**32)."""
        value = 0
        for i in range(5):
            (byte,) = self.take(1, what)
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                if i and not byte:
                    raise CorruptBitstreamError(f"the {what} varint is not minimal (a trailing zero byte)")
                if value > MAX_VARINT:
                    raise CorruptBitstreamError(f"the {what} varint {value} exceeds {MAX_VARINT}")
                return value
        raise CorruptBitstreamError(f"the {what} varint is longer than 5 bytes")


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
    (version,) = r.unpack("B", "version")
    if version not in READ_VERSIONS:
        raise UnsupportedBitstreamError(f"container format version {version}; this library reads versions {READ_VERSIONS}")
    if version < 3:
        (flags,) = r.unpack("B", "flags")
        if flags != 0:
            raise UnsupportedBitstreamError(f"container flags 0x{flags:02x} are not supported (expected 0)")
    fields = (_read_v3 if version >= 3 else _read_v12)(r, version)
    checks: List[EntropyCheck] = []
    if version >= 2:
        (n_checks,) = r.unpack("B", "entropy check count")
        if version >= 4:
            n_checks, fields["refinement_checks"] = n_checks & 0x0F, n_checks >> 4
        if n_checks > MAX_CHECKS:
            raise CorruptBitstreamError(f"{n_checks} entropy-parameter checks; at most {MAX_CHECKS} are allowed")
        for _ in range(n_checks):
            tables, *params = r.unpack(f"{1 + fields['batch']}I", "entropy check")
            checks.append(EntropyCheck(tables, tuple(params)))
    header_end = r.pos
    (crc,) = r.unpack("I", "header CRC")
    if zlib.crc32(data[:header_end]) != crc:
        raise CorruptBitstreamError("header CRC32 mismatch: the header bytes are corrupt")
    header = StreamHeader(**fields, checks=tuple(checks), version=version, header_size=r.pos)
    validate_header(header)
    return header


def _read_name(r: _Reader) -> str:
    (name_len,) = r.unpack("B", "name length")
    if not (1 <= name_len <= MAX_NAME):
        raise CorruptBitstreamError(f"model name length {name_len} is outside 1..{MAX_NAME}")
    name_b = r.take(name_len, "model name")
    try:
        return name_b.decode("ascii")
    except UnicodeDecodeError:
        raise CorruptBitstreamError(f"model name {name_b!r} is not ASCII") from None


def _check_key(kb: bytes, seen: Dict[str, float]) -> str:
    key = kb.decode("latin-1")
    if not _KEY_RE.match(key):
        raise CorruptBitstreamError(f"control name {kb!r} is not an ASCII identifier")
    if key in seen:
        raise CorruptBitstreamError(f"control {key!r} appears twice")
    return key


def _check_count(n: int, bound: int, what: str) -> int:
    if n > bound:
        raise CorruptBitstreamError(f"{what} {n} exceeds {bound}")
    return n


def _check_groups(n_groups: int, batch: int) -> None:
    if not (1 <= n_groups <= MAX_GROUPS):
        raise CorruptBitstreamError(f"{n_groups} substream groups; valid: 1..{MAX_GROUPS}")
    if not (1 <= batch <= MAX_BATCH):  # bound before reading a table sized by it
        raise CorruptBitstreamError(f"batch size {batch} is outside 1..{MAX_BATCH}")


def _read_v12(r: _Reader, version: int) -> Dict:
    name = _read_name(r)
    whash = r.take(8, "weights hash")
    batch, height, width, *pad = r.unpack("HHH4H", "image size")
    (n_shape,) = r.unpack("B", "shape length")
    shape = r.unpack(f"{_check_count(n_shape, MAX_SHAPE, 'shape length')}I", "shape")
    (n_ctl,) = r.unpack("B", "control count")
    controls: Dict[str, float] = {}
    for _ in range(_check_count(n_ctl, MAX_CONTROLS, "control count")):
        (klen,) = r.unpack("B", "control name length")
        if not (1 <= klen <= MAX_KEY):
            raise CorruptBitstreamError(f"control name length {klen} is outside 1..{MAX_KEY}")
        key = _check_key(r.take(klen, "control name"), controls)
        (controls[key],) = r.unpack("f", f"control {key!r}")
    (n_groups,) = r.unpack("B", "substream group count")
    _check_groups(n_groups, batch)
    layers = r.unpack(f"{n_groups}B", "layer tags")
    table = r.unpack(f"{2 * n_groups * batch}I", "substream table")
    lengths = tuple(tuple(table[2 * (g * batch + b)] for b in range(batch)) for g in range(n_groups))
    crcs = tuple(tuple(table[2 * (g * batch + b) + 1] for b in range(batch)) for g in range(n_groups))
    return dict(model_name=name, weights_hash=whash, batch=batch, height=height, width=width, pad=tuple(pad),
                shape=tuple(shape), controls=controls, layers=tuple(layers), lengths=lengths, crcs=crcs)


def _read_v3(r: _Reader, version: int) -> Dict:
    name = _read_name(r)
    whash = r.take(HASH_BYTES[version], "weights hash")
    batch, height, width = (r.varint(w) for w in ("batch size", "image height", "image width"))
    (mask,) = r.unpack("B", "padding mask")
    if mask > 0x0F:
        raise CorruptBitstreamError(f"padding mask 0x{mask:02x} has bits above the four sides set")
    pad = []
    for i, side in enumerate(("left", "right", "top", "bottom")):
        flagged = mask >> i & 1
        p = r.varint(f"{side} padding") if flagged else 0
        if flagged and p == 0:
            raise CorruptBitstreamError(f"{side} padding is flagged non-zero but stored as 0")
        pad.append(p)
    (n_shape,) = r.unpack("B", "shape length")
    shape = tuple(r.varint("shape") for _ in range(_check_count(n_shape, MAX_SHAPE, "shape length")))
    (n_ctl,) = r.unpack("B", "control count")
    n_ref = 0
    if version >= 4:
        n_ctl, n_ref = n_ctl & 0x1F, n_ctl >> 5
    controls: Dict[str, float] = {}
    for _ in range(_check_count(n_ctl, MAX_CONTROLS, "control count")):
        (tag,) = r.unpack("B", "control name length")
        klen, kind = tag & 0x3F, tag >> 6
        if not (1 <= klen <= MAX_KEY):
            raise CorruptBitstreamError(f"control name length {klen} is outside 1..{MAX_KEY}")
        key = _check_key(r.take(klen, "control name"), controls)
        if kind == _F32:
            (controls[key],) = r.unpack("f", f"control {key!r}")
        elif kind == _F16:
            (controls[key],) = r.unpack("e", f"control {key!r}")
        elif kind == _ZERO:
            controls[key] = 0.0
        else:
            raise CorruptBitstreamError(f"control {key!r} has value encoding {kind}; valid: 0 (float32), 1 (float16), 2 (zero)")
    (n_groups,) = r.unpack("B", "substream group count")
    _check_groups(n_groups, batch)
    layers = r.unpack(f"{n_groups}B", "layer tags")
    lengths = tuple(tuple(r.varint("substream length") for _ in range(batch)) for _ in range(n_groups))
    crcs = r.unpack(f"{len(set(layers))}I", "layer CRCs")
    return dict(model_name=name, weights_hash=whash, batch=batch, height=height, width=width, pad=tuple(pad),
                shape=shape, controls=controls, layers=tuple(layers), lengths=lengths, layer_crcs=tuple(crcs),
                refinement_controls=n_ref)


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
    for g, lg in enumerate(header.lengths):
        group = []
        for b, n in enumerate(lg):
            s = data[pos:pos + n]
            pos += n
            if header.crcs and zlib.crc32(s) != header.crcs[g][b]:
                raise CorruptBitstreamError(f"CRC32 mismatch in substream {g} (image {b}): its bytes are corrupt")
            group.append(s)
        strings.append(group)
    if header.version >= 3:
        for tag, want, got in zip(sorted(set(header.layers)), header.layer_crcs, layer_crcs(header.layers, strings)):
            if want != got:
                raise CorruptBitstreamError(f"CRC32 mismatch in the substreams of layer {tag}: their bytes are corrupt")
    return header, strings


__all__ = [
    "BitstreamError",
    "CorruptBitstreamError",
    "EntropyCheck",
    "EntropyParameterMismatchError",
    "FORMAT_VERSION",
    "ForeignBitstreamError",
    "HASH_BYTES",
    "MAGIC",
    "StreamHeader",
    "TruncatedBitstreamError",
    "UnsupportedBitstreamError",
    "layer_crcs",
    "pack",
    "read_header",
    "unpack",
    "validate_header",
    "varint",
]
