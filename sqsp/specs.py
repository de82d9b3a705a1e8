"""Strings with structure, parsed in one place: generator block groups, generator specs, seeds.

Below ``config`` (which re-exports these): nothing here imports the rest of sqsp.
"""
from __future__ import annotations

import dataclasses
import os
import re
import typing

from .errors import ConfigError

BLOCK_GROUPS = {"b4-b8": ("b4", "b8"), "b16-b32": ("b16", "b32"), "b64-b128": ("b64", "b128")}
"""Appendix Table 6's groups of generator blocks, by output resolution."""
_BLOCK_RE = re.compile(r"^b(\d+)$")


_RANDOM_RE = re.compile(r"^random:(?P<arch>[a-z0-9_-]+)(?:@(?P<res>\d+))?$")
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth")
GeneratorKind = typing.Literal["zoo", "random", "pickle", "checkpoint"]


@dataclasses.dataclass(frozen=True)
class GeneratorSpec:
    """A ``generator`` string, parsed once: what kind of generator it names.

    - ``zoo``: an entry name (embedded, or of a user manifest), built or copied on first use;
    - ``random``: ``random:<arch>[@<resolution>]``, an untrained network (the control rows);
    - ``pickle``: an official StyleGAN2-ADA ``.pkl`` (needs the NVlabs code to load);
    - ``checkpoint``: a file of ours (``.safetensors``/``.pt``/``.pth``, or any path).
    The kinds differ in what exists before a run (a file here, or nothing), what can be built,
    whether a discriminator comes with it and whether its sampling is exact to share; the
    callers ask this object instead of re-deriving it from the string.
    """
    text: str
    kind: GeneratorKind
    arch: str | None = None          # random: only
    resolution: int | None = None    # random: only, None where the spec leaves it to the zoo's

    @property
    def is_file(self) -> bool:
        """It names a file that must exist where the run starts (relative to its directory)."""
        return self.kind in ("pickle", "checkpoint")

    @property
    def may_have_discriminator(self) -> bool:
        """A zoo entry keeps its D and an official pickle holds one; our checkpoints and random: do not."""
        return self.kind in ("zoo", "pickle")


def parse_generator(spec: str) -> GeneratorSpec:
    """The kind of ``spec``; a malformed ``random:`` spec is a ConfigError naming the form."""
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"generator={spec!r}: give a zoo name, 'random:<arch>[@<res>]' or a checkpoint path")
    if spec.startswith("random:"):
        m = _RANDOM_RE.match(spec)
        if m is None:
            raise ConfigError(f"generator={spec!r}: an untrained generator is 'random:<arch>[@<resolution>]', "
                              "e.g. 'random:stylegan@16'")
        return GeneratorSpec(spec, "random", m["arch"], int(m["res"]) if m["res"] else None)
    if spec.endswith(".pkl"):
        return GeneratorSpec(spec, "pickle")
    if "/" in spec or os.sep in spec or spec.endswith(CHECKPOINT_SUFFIXES):
        return GeneratorSpec(spec, "checkpoint")
    return GeneratorSpec(spec, "zoo")


def is_zoo_name(spec: str) -> bool:
    """Whether a ``generator`` spec names a zoo entry (see ``parse_generator``); a malformed
    spec names none (validation refuses it with the reason)."""
    try:
        return parse_generator(spec).kind == "zoo"
    except ConfigError:
        return False


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
