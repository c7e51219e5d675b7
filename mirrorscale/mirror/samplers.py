"""Samplers: take a reproducible fraction of a task's input for a mirror run.

The default (:func:`sample_inputs` without ``samplers``) samples every *sized*
argument by the same fraction and leaves scalars alone:

==========================  ==================================================
argument                    what the default sampler keeps
==========================  ==================================================
list / tuple                ``round(n * fraction)`` items (at least 1), in order;
                            in runs of up to 16 neighbours when no other argument
                            has its length (:func:`sample_blocks`)
list of existing file paths files in random order until their bytes reach
                            ``fraction`` of the total (:func:`sample_paths_by_bytes`)
dict                        every sized value sampled by the fraction; keys kept
pandas DataFrame / Series   rows, in order (``iloc``); *keyed* by an integer,
                            boolean or categorical key whose distinct keys a
                            row sample would over-count (:mod:`.keyed`)
numpy array                 rows (axis 0), in order; a 1-D integer array of
                            such keys is keyed
str, bytes, numbers, None   unchanged (scalars)
==========================  ==================================================

A list of str, bytes or int keys is row-sampled; when the task is said to count
them (``"keys"``) or to be sampled by them (``"hash"``), their distinct-key
profile (:class:`~mirrorscale.mirror.distinct.DistinctProfile`, read on the
sample) is kept in :attr:`SampledInput.profiles` and informs the memory fit.
By default it is not read: hashing every item of the sample cost the caller as
much CPU as the mirror's own call on one-pass tasks (sorting 4 M strings:
0.06 of the caller's 0.08 s), for evidence alone. Arguments of equal
length are always row-sampled at the same positions (features and labels).

Samples are reproducible: the same seed and fraction give the same sample.
:func:`subsample` draws a smaller sample from a larger one (as ``preview`` does
for its probe and 1 % samples), so the smaller is part of the larger and costs
time in proportion to the sample, not to the input. ``samplers`` replaces the sampler of
named arguments (a keyword name or a positional index) with a callable
``sampler(value, fraction, seed) -> value`` or a ``"module:function"`` reference,
as a policy would name it, or one of the built-in specs ``"rows"``, ``"keys"``, ``"hash"`` and
``"hash:COLUMN"`` (:func:`sample_inputs`). The sizes of the input before and after sampling
(:func:`mirrorscale.features.value_size`, the same estimate the engines record
for real runs) are recorded as features of the mirror run.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mirrorscale.features import file_size, is_path_list, value_size

__all__ = [
    "BLOCK_ITEMS", "MIN_BLOCKS", "SampledInput", "Sampler", "resolve_sampler", "sample_blocks", "sample_count",
    "sample_inputs", "sample_paths_by_bytes", "sample_paths_by_count", "sample_positions", "sample_value",
    "subsample",
]

Sampler = Callable[[Any, float, int], Any]
"""``sampler(value, fraction, seed) -> sampled value``."""

def sample_count(n: int, fraction: float) -> int:
    """How many of ``n`` items a ``fraction`` keeps: ``round(n * fraction)``, at least 1 (0 of 0)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    return 0 if n == 0 else min(n, max(1, round(n * fraction)))


def sample_positions(n: int, fraction: float, seed: int) -> list[int]:
    """Sorted positions of a reproducible ``fraction`` of ``range(n)`` (seeded, without replacement)."""
    return _positions(n, fraction, seed).tolist()


@functools.lru_cache(maxsize=4)
def _positions(n: int, fraction: float, seed: int) -> Any:
    """:func:`sample_positions` as a sorted, read-only numpy array (the last few are cached).

    ``shuffle=False``: the positions are sorted anyway, and numpy then skips
    shuffling them (0.07 -> 0.03 s for 450 k of 9 M rows).
    """
    import numpy as np

    k = sample_count(n, fraction)
    if k == n:
        chosen = np.arange(n)
    else:
        chosen = np.random.default_rng(seed).choice(n, k, replace=False, shuffle=False)
        chosen.sort()
    chosen.flags.writeable = False
    return chosen


def _is_instance_of(value: Any, module: str, names: tuple[str, ...]) -> bool:
    """``isinstance`` against ``module.name`` without importing ``module``."""
    mod = sys.modules.get(module)
    if mod is None:
        return False
    types = tuple(getattr(mod, name) for name in names if hasattr(mod, name))
    return bool(types) and isinstance(value, types)


def _is_pandas(value: Any) -> bool:
    return _is_instance_of(value, "pandas", ("DataFrame", "Series"))


def _is_numpy(value: Any) -> bool:
    return _is_instance_of(value, "numpy", ("ndarray",)) and getattr(value, "ndim", 0) > 0


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, bytes, bytearray, int, float, complex, bool))


def _rebuild(value: Sequence[Any], items: list[Any]) -> Any:
    """A sequence of ``value``'s type holding ``items`` (plain list/tuple for subclasses)."""
    return tuple(items) if isinstance(value, tuple) else items


def sample_paths_by_count(paths: Sequence[Any], fraction: float, seed: int) -> Any:
    """A reproducible ``fraction`` of the files, counted in files, in their original order."""
    return _rebuild(paths, _take(paths, sample_positions(len(paths), fraction, seed)))


def sample_paths_by_bytes(paths: Sequence[Any], fraction: float, seed: int) -> Any:
    """Files taken in seeded random order until they hold ``fraction`` of the total bytes.

    At least one file is kept; the result keeps the original order.
    """
    import numpy as np

    sizes = [file_size(p) for p in paths]
    target = fraction * sum(sizes)
    chosen, total = [], 0
    for i in np.random.default_rng(seed).permutation(len(paths)).tolist():
        if chosen and total >= target:
            break
        if chosen and total + sizes[i] - target > target - total:
            continue  # this file overshoots more than stopping here undershoots
        chosen.append(i)
        total += sizes[i]
    return _rebuild(paths, [paths[i] for i in sorted(chosen)])


def _same_mapping(original: Mapping[Any, Any], parts: dict[Any, Any]) -> Any:
    """``parts`` as ``original``'s mapping type when it can be built from a dict."""
    try:
        return type(original)(parts)
    except TypeError:
        return parts


def sample_value(value: Any, fraction: float, seed: int) -> Any:
    """The default sampler: sample a sized ``value`` by ``fraction``; return scalars unchanged."""
    if _is_scalar(value):
        return value
    if _is_pandas(value):
        return value.iloc[_positions(len(value), fraction, seed)]
    if _is_numpy(value):
        return value[_positions(len(value), fraction, seed)]
    if isinstance(value, Mapping):  # dict of partitions: each partition sampled, keys kept
        parts = {k: sample_value(v, fraction, seed) for k, v in value.items()}
        return parts if type(value) is dict else _same_mapping(value, parts)
    if isinstance(value, (list, tuple)) and is_path_list(value):
        return sample_paths_by_bytes(value, fraction, seed)
    if isinstance(value, (list, tuple)):
        return _rebuild(value, _take(value, sample_positions(len(value), fraction, seed)))
    return value


BLOCK_ITEMS = 16
"""Longest run of neighbouring items :func:`sample_blocks` takes from a list at a time."""
MIN_BLOCKS = 1024
"""Fewest runs a block sample is drawn in: smaller samples take shorter runs, single items below 2048."""


def sample_blocks(value: Sequence[Any], fraction: float, seed: int) -> Any:
    """A reproducible ``fraction`` of a list or tuple, in runs of up to :data:`BLOCK_ITEMS` neighbours, in order.

    What the default takes from a list or tuple that no other argument is
    aligned with. Items picked one by one lie scattered in the caller's heap:
    taking 200 k of 4 M strings and pickling them cost 71 ms of cache misses,
    in runs of 16 neighbours 22 ms. The runs start at seeded random multiples
    of their length, at least :data:`MIN_BLOCKS` of them spread over the whole
    list, so costs that add up over items are sampled without bias (items that
    resemble their neighbours, such as lines of one session, vary more from
    seed to seed than in a sample of single items).
    """
    import numpy as np

    block = max(1, min(BLOCK_ITEMS, sample_count(len(value), fraction) // MIN_BLOCKS))
    if block == 1:
        return sample_value(value, fraction, seed)
    starts = _positions(len(value) // block, fraction, seed) * block
    return _rebuild(value, _take(value, (starts[:, None] + np.arange(block)).ravel().tolist()))


def _take(value: Sequence[Any], positions: list[int]) -> list[Any]:
    """``[value[i] for i in positions]``, in C."""
    import operator

    if len(positions) == 1:
        return [value[positions[0]]]
    return list(operator.itemgetter(*positions)(value)) if positions else []


def resolve_sampler(spec: Sampler | str) -> Sampler:
    """A sampler callable from itself or from a ``"module:function"`` reference."""
    if callable(spec):
        return spec
    module, sep, name = str(spec).partition(":")
    if not sep or not module or not name:
        raise ValueError(f"sampler reference must look like 'module:function', got {spec!r}")
    target: Any = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"sampler {spec!r} is not callable")
    return target


@dataclass(frozen=True)
class SampledInput:
    """The sampled arguments of one mirror run, their sizes before and after, and how each was sampled."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    fraction: float
    seed: int
    full_bytes: int
    sampled_bytes: int
    sampled: tuple[str, ...] = field(default=())
    plans: dict[str, Any] = field(default_factory=dict, compare=False)
    """Argument name -> :class:`~mirrorscale.mirror.keyed.KeyPlan` of the key-sampled arguments."""
    profiles: dict[str, Any] = field(default_factory=dict, compare=False)
    """Argument name -> :class:`~mirrorscale.mirror.distinct.DistinctProfile` of row-sampled arguments
    that are keys (a list, Series or array of them, or a sampler's ``keys``) growing sub-linearly."""
    counted: tuple[str, ...] = field(default=(), compare=False)
    """The arguments of ``profiles`` whose keys the task is said to count (``"keys"`` or a sampler's
    ``keys``): their growth becomes the memory fit's prior."""

    @property
    def effective_fraction(self) -> float:
        """``sampled_bytes / full_bytes`` (the nominal fraction when nothing is sized)."""
        return self.sampled_bytes / self.full_bytes if self.full_bytes else self.fraction

    def features(self) -> dict[str, Any]:
        """The sizes (and any keyed plans) as features of the mirror run, for the shadow's evidence."""
        out = {"sample_fraction": self.fraction, "effective_fraction": round(self.effective_fraction, 6),
               "sampled_input_bytes": self.sampled_bytes, "full_input_bytes": self.full_bytes,
               "sampled_arguments": list(self.sampled), "seed": self.seed}
        if self.plans:
            out["keyed"] = {name: plan.evidence() for name, plan in self.plans.items()}
        if self.profiles:
            out["distinct"] = {name: {**profile.evidence(), "counted": name in self.counted}
                               for name, profile in self.profiles.items()}
        return out


def _length(value: Any) -> int | None:
    """The row count of a sized argument that samplers cut by position, else None."""
    if isinstance(value, (list, tuple)) or _is_pandas(value) or _is_numpy(value):
        return len(value)
    return None


def _keyed_spec(spec: Any) -> tuple[str | None] | None:
    """``"hash"`` -> ``(None,)``, ``"hash:COLUMN"`` -> ``("COLUMN",)``; anything else None."""
    if not isinstance(spec, str) or not (spec == "hash" or spec.startswith("hash:")):
        return None
    column = spec.partition(":")[2]
    return (column or None,)


def _resolved(samplers: Mapping[str | int, Sampler | str] | None) -> dict[str, Sampler | str]:
    """``samplers`` by argument name, references resolved (the built-in ``rows`` and ``hash`` specs kept)."""
    return {str(k): v if v in ("rows", "keys") or _keyed_spec(v) else resolve_sampler(v)
            for k, v in (samplers or {}).items()}


def _sample_argument(value: Any, fraction: float, seed: int, spec: Sampler | str | None,
                     aligned: bool) -> tuple[Any, Any, Any, bool]:
    """``(sampled value, KeyPlan or None, DistinctProfile or None, keys counted?)`` for one argument.

    See :func:`sample_inputs`; "counted" means the task's memory is said to follow these keys.
    """
    keyed = _keyed_spec(spec)
    if spec is None and not aligned and isinstance(value, (list, tuple)) and not is_path_list(value):
        return sample_blocks(value, fraction, seed), None, None, False
    if spec == "rows" or (spec is None and (aligned or isinstance(value, (list, tuple)))):
        # a list's keys are profiled only when named ("keys", "hash"): hashing each item of a 5 % sample
        # costs the caller as much as the mirror's own call on one-pass tasks, for evidence alone
        return sample_value(value, fraction, seed), None, None, False
    from mirrorscale.mirror.keyed import assess_keys, profile_of_keys, sample_by_key

    if callable(spec):
        new = spec(value, fraction, seed)
        keys = getattr(spec, "keys", None)
        profile = profile_of_keys(keys(new), fraction, seed) if callable(keys) else None
        return new, None, profile if profile and profile.sublinear else None, profile is not None
    try:
        plan, profile, row_sample = assess_keys(value, fraction, seed, column=keyed[0] if keyed else None,
                                                force=keyed is not None)
    except (TypeError, KeyError) as exc:  # unhashable values, a missing column
        if keyed is not None:
            raise ValueError(f"cannot key-sample by {spec!r}: {exc}") from exc
        plan = profile = row_sample = None
    if plan is not None:
        return sample_by_key(value, plan), plan, None, False
    if keyed is not None:
        raise ValueError(f"cannot key-sample a {type(value).__name__} by {spec!r}")
    if row_sample is None:
        row_sample = sample_value(value, fraction, seed)
    elif isinstance(value, (list, tuple)):
        row_sample = _rebuild(value, row_sample)
    keys_alone = profile is not None and profile.sublinear and not (_is_pandas(value) and value.ndim == 2)
    return row_sample, None, profile if keys_alone else None, spec == "keys" and profile is not None


def sample_inputs(args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None, *, fraction: float,
                  seed: int = 0, samplers: Mapping[str | int, Sampler | str] | None = None) -> SampledInput:
    """Sample every argument of a call by ``fraction`` (see the module docstring).

    ``samplers`` maps a keyword name or a positional index (``0`` or ``"0"``) to a
    custom sampler (one with a ``keys`` attribute, ``keys(sampled value) ->
    iterable``, also names the keys its task counts, e.g. the words of text
    lines: their distinct profile informs the memory extrapolation),
    ``"rows"`` (the positional sample, item by item), ``"keys"`` (the positional sample of
    values the task counts, such as a list to dedupe: their distinct profile
    informs the memory extrapolation), ``"hash"`` (a keyed sample by the
    values themselves) or ``"hash:COLUMN"`` (keyed by a DataFrame's column;
    :mod:`.keyed`). Other arguments use the default: a DataFrame, Series or
    integer array is keyed when its keys grow sub-linearly enough
    (:class:`~mirrorscale.mirror.distinct.DistinctProfile`) and no other argument
    has its length; everything else, lists included (not profiled unless named:
    whether a task's memory follows a list's keys or its rows, the three
    mirrors cannot tell, see :func:`~mirrorscale.mirror.extrapolate.peak_prior_from_keys`),
    goes through :func:`sample_value`, a long list or tuple that no other argument
    is aligned with through :func:`sample_blocks`. Every positional sample uses the same
    ``seed``, so arguments of equal length (features ``X`` and labels ``y``)
    are sampled at the same positions and stay aligned.
    """
    sample_count(1, fraction)  # validates the fraction
    custom = _resolved(samplers)
    kwargs = dict(kwargs or {})
    names = [str(i) for i in range(len(args))] + list(kwargs)
    values = list(args) + list(kwargs.values())
    lengths = [_length(v) for v in values]
    out, sampled, plans, profiles, counted, full_bytes, sampled_bytes = [], [], {}, {}, [], 0, 0
    for name, value, length in zip(names, values, lengths):
        aligned = length is not None and lengths.count(length) > 1
        new, plan, profile, counts = _sample_argument(value, fraction, seed, custom.get(name), aligned)
        if plan is not None:
            plans[name] = plan
        if profile is not None:
            profiles[name] = profile
        if counts and profile is not None:
            counted.append(name)
        before = value_size(value)
        after = before if new is value else value_size(new)
        if new is not value:
            sampled.append(name)
        full_bytes, sampled_bytes = full_bytes + before, sampled_bytes + after
        out.append(new)
    return SampledInput(args=tuple(out[: len(args)]), kwargs=dict(zip(list(kwargs), out[len(args):])),
                        fraction=fraction, seed=seed, full_bytes=full_bytes, sampled_bytes=sampled_bytes,
                        sampled=tuple(sampled), plans=plans, profiles=profiles, counted=tuple(counted))


def subsample(sample: SampledInput, fraction: float,
              samplers: Mapping[str | int, Sampler | str] | None = None) -> SampledInput:
    """A smaller sample (``fraction`` of the *full* input) drawn from ``sample`` itself.

    Cheaper than sampling the full input again, and nested by construction: the
    smaller sample is part of the larger. Key-sampled arguments keep the keys
    that hash below the smaller fraction (:func:`~mirrorscale.mirror.keyed.subsample_by_key`);
    the others are sampled by ``fraction / sample.fraction`` as
    :func:`sample_inputs` would, never newly keyed. Sizes stay relative to the full input.
    """
    if not 0 < fraction <= sample.fraction:
        raise ValueError(f"fraction must be in (0, {sample.fraction}], got {fraction!r}")
    from mirrorscale.mirror.keyed import subsample_by_key

    custom = _resolved(samplers)
    relative = fraction / sample.fraction
    names = [str(i) for i in range(len(sample.args))] + list(sample.kwargs)
    out, sampled_bytes = [], 0
    for name, value in zip(names, list(sample.args) + list(sample.kwargs.values())):
        spec = custom.get(name)
        if name in sample.plans:
            new = subsample_by_key(value, sample.plans[name], fraction)
        elif callable(spec):
            new = spec(value, relative, sample.seed)
        else:
            new = sample_value(value, relative, sample.seed)
        sampled_bytes += value_size(new)
        out.append(new)
    return SampledInput(args=tuple(out[: len(sample.args)]), kwargs=dict(zip(list(sample.kwargs), out[len(sample.args):])),
                        fraction=fraction, seed=sample.seed, full_bytes=sample.full_bytes,
                        sampled_bytes=sampled_bytes, sampled=sample.sampled, plans=sample.plans,
                        profiles=sample.profiles, counted=sample.counted)
