"""Typed errors raised by compressai-rdc.

Every error names the offending input and what would have been valid, so that a
user can fix the call without reading the source. All inherit from
:class:`RDCError`; most also inherit from the builtin a caller would naturally
catch (``ValueError``, ``KeyError``, ``FileNotFoundError``).
"""

from __future__ import annotations

from typing import Iterable


def plural(noun: str) -> str:
    """English plural of a registry kind: loss → losses, quality-map strategy → quality-map strategies."""
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "i", "o", "u"):
        return noun[:-1] + "ies"
    return noun + "s"


class RDCError(Exception):
    """Base class of every error raised on purpose by compressai-rdc."""


class UnknownNameError(RDCError, KeyError):
    """A name was looked up in a registry that does not contain it."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]):
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        shown = ", ".join(self.valid) if self.valid else "(none registered)"
        super().__init__(f"unknown {kind} {name!r}; registered {plural(kind)}: {shown}")

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0])


class RegistrationError(RDCError, ValueError):
    """A plugin tried to register something invalid or a name twice."""


class PluginLoadError(RDCError, ImportError):
    """A plugin entry point could not be imported or registered."""


class InvalidArgumentError(RDCError, ValueError):
    """An argument is outside its valid range or set."""


class WeightsNotFoundError(RDCError, FileNotFoundError):
    """No weights file could be found for a pretrained model or backbone."""


class ChecksumError(RDCError, ValueError):
    """A weights file does not have the sha256 it is declared with."""


class WeightsFormatError(RDCError, ValueError):
    """A weights file is not in an accepted format (safetensors) or does not fit."""


class DatasetError(RDCError, FileNotFoundError):
    """A dataset folder is missing or holds no usable images."""


class FixedPointRangeError(RDCError, ValueError):
    """A model's entropy-parameter path cannot be evaluated exactly in fixed point
    (a layer without a fixed-point form, or weights whose sums leave float64's exact range)."""
