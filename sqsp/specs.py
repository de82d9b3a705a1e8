"""Strings with structure, parsed in one place: generator block groups, generator specs, seeds.

Below ``config`` (which re-exports these): nothing here imports the rest of sqsp.
"""
from __future__ import annotations

import os
import re
import typing

from .errors import ConfigError

BLOCK_GROUPS = {"b4-b8": ("b4", "b8"), "b16-b32": ("b16", "b32"), "b64-b128": ("b64", "b128")}
"""Appendix Table 6's groups of generator blocks, by output resolution."""
_BLOCK_RE = re.compile(r"^b(\d+)$")


def is_zoo_name(spec: str) -> bool:
    """Whether a ``generator`` spec names a zoo entry, rather than ``random:<arch>`` or a path
    to a checkpoint (ours or an official pickle). Only zoo names can be built on first use."""
    return not (spec.startswith("random:") or "/" in spec or os.sep in spec
                or spec.endswith((".pkl", ".safetensors", ".pt", ".pth")))


def resolve_blocks(spec: str, have: typing.Sequence[str]) -> tuple[str, ...] | None:
    """The blocks of ``generator_blocks`` that a generator with blocks ``have`` gives (None: all).
    A group keeps the members the generator has, as the paper groups blocks by output
    resolution (``b16-b32`` of a 16-px generator is ``b16``); a block named alone, or a group of
    which the generator has no member, is a ConfigError listing the blocks it has."""
    names = parse_blocks(spec)
    if names is None:
        return None
    out: list[str] = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        members = BLOCK_GROUPS.get(part, (part,))
        got = [n for n in members if n in have]
        if not got or (part not in BLOCK_GROUPS and len(got) < len(members)):
            raise ConfigError(f"generator_blocks={spec!r}: the generator has no block "
                              f"{'of group ' + repr(part) + ' ' if part in BLOCK_GROUPS else ''}{list(members)}; "
                              f"it has {list(have)}")
        out += [n for n in got if n not in out]
    return tuple(out)


def missing_block_group(spec: str, resolution: int) -> str | None:
    """The first group of ``generator_blocks`` that a generator of ``resolution`` px has no
    block of (blocks b4 … b<resolution>), or None."""
    have = [f"b{2 ** i}" for i in range(2, resolution.bit_length())]
    for part in filter(None, (p.strip() for p in spec.split(","))):
        if part in BLOCK_GROUPS and not set(BLOCK_GROUPS[part]) & set(have):
            return part
    return None


def parse_blocks(spec: str) -> tuple[str, ...] | None:
    """Block names from ``generator_blocks``; None means all blocks of the generator."""
    spec = spec.strip()
    if spec == "all":
        return None
    out: list[str] = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        names = BLOCK_GROUPS.get(part, (part,))
        for n in names:
            if not _BLOCK_RE.match(n):
                raise ConfigError(
                    f"generator_blocks={spec!r}: {part!r} is not a block name; allowed: 'all', names "
                    f"like 'b4', 'b8', … (output resolution), groups {sorted(BLOCK_GROUPS)}")
            if n not in out:
                out.append(n)
    if not out:
        raise ConfigError(f"generator_blocks={spec!r} names no block; use 'all' or e.g. 'b4,b8'")
    return tuple(out)


def parse_seeds(text: str, flag: str = "--seeds") -> list[int]:
    """``3`` -> [0, 1, 2]; ``4,7`` -> [4, 7]; ``7,`` -> [7]."""
    usage = "give a count N (seeds 0..N-1) or a comma-separated list (4,7; a single seed: 7,)"
    try:
        if "," in text:
            seeds = [int(s) for s in text.split(",") if s.strip()]
        else:
            count = int(text)
            if count < 1:
                raise ValueError(f"{flag} {text}: a count of seeds must be >= 1 ({flag} 1 runs seed 0 alone); "
                                 f"{usage}")
            seeds = list(range(count))
    except ValueError as e:
        raise ConfigError(str(e) if str(e).startswith(flag) else f"{flag} {text!r}: {usage}") from None
    if not seeds or any(s < 0 for s in seeds):
        raise ConfigError(f"{flag} {text!r}: need at least one seed, all >= 0; {usage}")
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise ConfigError(f"{flag} {text!r}: seed(s) {twice} appear more than once; each seed runs once")
    return seeds
