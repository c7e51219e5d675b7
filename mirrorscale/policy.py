"""Per-task policies: what mirrorscale may do for each task, written by the user.

A ``mirrorscale.toml`` holds the keys at its top level, a ``pyproject.toml``
under ``[tool.mirrorscale]``::

    [tool.mirrorscale]
    mode = "recommend"                      # defaults for every task
    headroom = 0.2
    [tool.mirrorscale.tasks."etl_daily.transform_*"]
    mode = "enforce"
    mirror = true
    samplers = { 0 = "hash:user_id" }       # mirrors sample argument 0 by its user_id key
    memory = { min_allowed = "256MiB", max_allowed = "8GiB" }

Tasks are named ``"pipeline_id.task_id"`` and matched case-sensitively by fnmatch
patterns (``etl_daily.transform_*``, ``my_flow.*``, ``*``). Precedence, lowest
first; a layer overrides only the fields it sets (``memory``/``cpu``/``priority``
merge per bound):

1. built-in defaults (the field defaults of :class:`TaskPolicy`);
2. the file's top-level keys;
3. each matching pattern, least specific first: wildcard before exact name, then
   fewer literal characters before more, then earlier in the file before later;
4. the kill switches ``MIRRORSCALE_MODE``, ``MIRRORSCALE_MIRROR`` (true/false/1/0),
   ``MIRRORSCALE_SAMPLE_FRACTION``, ``MIRRORSCALE_HEADROOM``: they override the
   defaults *and* every pattern (``MIRRORSCALE_MODE=observe`` turns every task to
   observe). Empty values count as unset.

:func:`load_policies` without a path reads ``$MIRRORSCALE_POLICY_FILE``, else
``./mirrorscale.toml``, else ``./pyproject.toml`` if it has ``[tool.mirrorscale]``,
else uses the built-in defaults. Byte sizes: :func:`parse_byte_size`. TOML has no
null: ``pool = ""`` or ``queue = ""`` unsets a default.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

__all__ = [
    "MODES", "Mode", "PolicyError", "MemoryBounds", "CpuBounds", "PriorityBounds",
    "TaskPolicy", "PolicyRule", "PolicySet", "load_policies", "parse_byte_size", "format_bytes",
]

Mode = Literal["observe", "recommend", "enforce"]
MODES: tuple[str, ...] = ("observe", "recommend", "enforce")
BYTE_SIZE_HINT = "a byte size such as 512MiB or 2GiB (or an integer number of bytes)"

_UNITS = {"": 1, "b": 1}
for _i, _p in enumerate("kmgtpe", start=1):
    _UNITS.update({_p: 1000**_i, _p + "b": 1000**_i, _p + "i": 1024**_i, _p + "ib": 1024**_i})
_SIZE_RE = re.compile(r"^\s*(\d{1,30}(?:\.\d{0,30})?|\.\d{1,30})\s*([A-Za-z]{0,3})\s*$")


def parse_byte_size(value: int | float | str) -> int:
    """Return ``value`` as a whole number of bytes.

    Accepts non-negative ints and finite floats (bytes) and strings such as
    ``"512MiB"``, ``"2GiB"``, ``"1.5GB"``, ``"800M"``, ``"1.5 GiB"``. Units are
    case-insensitive; as in Kubernetes, ``K M G T P E`` (``KB``…) are powers of 1000
    and ``Ki Mi Gi Ti Pi Ei`` (``KiB``…) powers of 1024, so ``"800M"`` is
    800,000,000 bytes and ``"512MiB"`` is 536,870,912. Raises ``ValueError``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected {BYTE_SIZE_HINT}, got {value!r}")
    if isinstance(value, str):
        match = _SIZE_RE.match(value)
        unit = match and _UNITS.get(match.group(2).lower())
        if not unit:
            raise ValueError(f"expected {BYTE_SIZE_HINT}, got {value!r}")
        return int((Decimal(match.group(1)) * unit).to_integral_value())
    if value != value or value in (float("inf"), float("-inf")) or value < 0:
        raise ValueError(f"expected a non-negative byte size, got {value!r}")
    return int(round(value))


def format_bytes(n: int | float) -> str:
    """Render a byte count for humans with binary units: ``"1.5 GiB"``, ``"512 MiB"``, ``"0 B"``."""
    sign, value = ("-" if n < 0 else ""), abs(float(n))
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    for unit in units:
        if round(value, 2) < 1024 or unit == units[-1]:
            break
        value /= 1024
    if unit == "B":
        return f"{sign}{round(value)} B"
    return f"{sign}{value:.2f}".rstrip("0").rstrip(".") + f" {unit}"


def _to_bytes(value: Any) -> Any:
    if value is None:
        return None
    try:
        return parse_byte_size(value)
    except (ValueError, ArithmeticError):
        raise PydanticCustomError("byte_size", "expected " + BYTE_SIZE_HINT) from None


Bytes = Annotated[int, BeforeValidator(_to_bytes)]
_SAMPLER_SPEC = re.compile(r"rows|keys|hash(:.+)?|[\w.]+:[\w.]+")
SAMPLERS_HINT = ('a table of argument (name or position) -> sampler: "rows", "keys", "hash", "hash:COLUMN" '
                 'or "module:function", such as { 0 = "hash", events = "hash:user_id" }')


def _to_samplers(value: Any) -> Any:
    """A ``{argument: spec}`` table as sorted ``(argument, spec)`` pairs (hashable, like the policy)."""
    if isinstance(value, tuple):
        return value
    if not isinstance(value, Mapping) or not all(
            isinstance(k, (str, int)) and isinstance(v, str) and _SAMPLER_SPEC.fullmatch(v) for k, v in value.items()):
        raise PydanticCustomError("samplers", "expected " + SAMPLERS_HINT)
    return tuple(sorted((str(k), v) for k, v in value.items()))


Samplers = Annotated[tuple[tuple[str, str], ...], BeforeValidator(_to_samplers)]
_Name = Annotated[str | None, BeforeValidator(lambda v: None if v == "" else v)]
_CONFIG = ConfigDict(extra="forbid", frozen=True, strict=True)


class _Bounds(BaseModel):
    """Shared ``min_allowed``/``max_allowed`` logic (VPA style)."""

    model_config = _CONFIG
    min_allowed: Any = None
    max_allowed: Any = None

    @model_validator(mode="after")
    def _ordered(self) -> _Bounds:
        lo, hi = self.min_allowed, self.max_allowed
        if lo is not None and hi is not None and lo > hi:
            show = format_bytes if isinstance(self, MemoryBounds) else str
            raise PydanticCustomError(
                "bounds_order", "min_allowed ({lo}) is greater than max_allowed ({hi})",
                {"lo": show(lo), "hi": show(hi)})
        return self

    def clamp(self, value: Any) -> Any:
        """Return ``value`` moved inside ``[min_allowed, max_allowed]`` (unset bounds are open)."""
        value = value if self.min_allowed is None else max(value, self.min_allowed)
        return value if self.max_allowed is None else min(value, self.max_allowed)


class MemoryBounds(_Bounds):
    """Memory limits in bytes; the TOML may use strings like ``"256MiB"``."""

    min_allowed: Bytes | None = Field(None, ge=0)
    max_allowed: Bytes | None = Field(None, ge=0)


class CpuBounds(_Bounds):
    """CPU limits in cores (``0.5``, ``4``)."""

    min_allowed: float | None = Field(None, ge=0, allow_inf_nan=False)
    max_allowed: float | None = Field(None, ge=0, allow_inf_nan=False)


class PriorityBounds(_Bounds):
    """Priority (e.g. Airflow ``priority_weight``) limits."""

    min_allowed: int | None = None
    max_allowed: int | None = None


class TaskPolicy(BaseModel):
    """The settings for one task (or, partially set, one layer of a :class:`PolicySet`)."""

    model_config = _CONFIG
    mode: Annotated[Mode, BeforeValidator(lambda v: v.strip().lower() if isinstance(v, str) else v)] = "observe"
    mirror: bool = False
    sample_fraction: float = Field(0.05, gt=0, le=0.5)
    samplers: Samplers = ()
    """Per-argument samplers for mirrors (see :func:`~mirrorscale.mirror.samplers.sample_inputs`)."""
    memory: MemoryBounds = Field(default_factory=MemoryBounds)
    cpu: CpuBounds = Field(default_factory=CpuBounds)
    headroom: float = Field(0.15, ge=0, le=10)
    pool: _Name = None
    pool_slot_memory: Bytes | None = Field(None, gt=0)
    priority: PriorityBounds = Field(default_factory=PriorityBounds)
    queue: _Name = None
    features: tuple[str, ...] = Field((), strict=False)
    default_memory: Bytes | None = Field(None, gt=0)

    def pool_slots_for(self, memory_bytes: int) -> int:
        """Memory in pool units: ``ceil(memory / pool_slot_memory)``, at least 1 (1 if unset)."""
        if not self.pool_slot_memory:
            return 1
        return max(1, -(-int(memory_bytes) // self.pool_slot_memory))


_HINTS = {
    "mode": "one of " + ", ".join(MODES), "mirror": "true or false",
    "sample_fraction": "a number with 0 < sample_fraction <= 0.5", "samplers": SAMPLERS_HINT,
    "headroom": "a number from 0 to 10 (0.15 means 15% extra)",
    "memory.": BYTE_SIZE_HINT, "cpu.": "a number of CPU cores >= 0, such as 0.5 or 4", "priority.": "an integer",
    "pool": "a pool name (a string)", "queue": "a queue name (a string)",
    "pool_slot_memory": BYTE_SIZE_HINT + ", greater than 0", "default_memory": BYTE_SIZE_HINT + ", greater than 0",
    "features": "a list of parameter names (strings)",
    "memory": 'a table such as { min_allowed = "256MiB", max_allowed = "8GiB" }',
    "cpu": "a table such as { min_allowed = 0.5, max_allowed = 4 }",
    "priority": "a table such as { min_allowed = 1, max_allowed = 10 }",
}
_BOUND_FIELDS = ("memory", "cpu", "priority")


class PolicyError(ValueError):
    """A policy file, mapping or environment variable is invalid; the message says where and why."""

    def __init__(self, problems: Sequence[str], *, source: str | None = None) -> None:
        self.problems, self.source = list(problems), source
        head = f"invalid mirrorscale policy in {source}" if source else "invalid mirrorscale policy"
        body = " " + self.problems[0] if len(self.problems) == 1 else "\n  " + "\n  ".join(self.problems)
        super().__init__(f"{head}:{body}")


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _path(loc: Sequence[Any]) -> str:
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        bare = re.fullmatch(r"[A-Za-z0-9_-]+", part) and not (i == 1 and loc[0] == "tasks")  # patterns: quoted
        out += ("." if out else "") + (part if bare else json.dumps(part))
    return out or "(top level)"


def _problem(err: Mapping[str, Any], prefix: tuple[Any, ...], *, top: bool) -> str:
    loc = tuple(err["loc"])
    names = [p for p in loc if isinstance(p, str)]
    path = _path(prefix + loc)
    if err["type"] == "extra_forbidden":
        in_bounds = len(names) > 1 and names[-2] in _BOUND_FIELDS
        allowed = list(MemoryBounds.model_fields) if in_bounds else list(TaskPolicy.model_fields)
        allowed += ["tasks"] if top and len(names) == 1 else []
        close = difflib.get_close_matches(names[-1], allowed, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"{path}: unknown field{hint}; allowed: {', '.join(allowed)}"
    if err["type"] == "bounds_order":
        return f"{path}: {err['msg']}"
    key = names[-1] if names else ""
    if len(names) > 1 and names[-2] in _BOUND_FIELDS:
        key = names[-2] + "."
    hint = _HINTS.get(key) or ("a table of policy fields" if err["type"] == "model_type" else err["msg"])
    return f"{path} = {_show(err.get('input'))}: expected {hint}"


def _validate(data: Any, prefix: tuple[Any, ...], problems: list[str], *, top: bool = False) -> TaskPolicy:
    try:
        return TaskPolicy.model_validate(data)
    except ValidationError as exc:
        problems.extend(_problem(e, prefix, top=top) for e in exc.errors(include_url=False))
        return TaskPolicy()


_WILDCARD = re.compile(r"\*|\?|\[!?\]?[^\]]*\]")  # what fnmatch treats as a wildcard


@dataclass(frozen=True)
class PolicyRule:
    """One ``tasks."PATTERN"`` table: its pattern, the fields it sets and its place in the file."""

    pattern: str
    policy: TaskPolicy
    order: int = 0

    @property
    def exact(self) -> bool:
        """True when the pattern has no wildcard and so names one task."""
        return not any(c in self.pattern for c in "*?[")

    @property
    def specificity(self) -> tuple[bool, int, int]:
        """Sort key, least specific first: (exact, literal characters, file order)."""
        return (self.exact, len(_WILDCARD.sub("", self.pattern)), self.order)

    def matches(self, key: str) -> bool:
        """True when ``key`` (``"pipeline_id.task_id"``) matches this pattern."""
        return key == self.pattern if self.exact else fnmatchcase(key, self.pattern)


def _merge(layers: Sequence[tuple[str, TaskPolicy]], key: str) -> TaskPolicy:
    merged: dict[str, Any] = TaskPolicy().model_dump()
    for _, layer in layers:
        for name, value in layer.model_dump(exclude_unset=True).items():
            merged[name] = {**merged[name], **value} if name in _BOUND_FIELDS else value
    try:
        return TaskPolicy.model_validate(merged)
    except ValidationError as exc:
        names = " + ".join(n for n, p in layers if p.model_fields_set or n == "defaults")
        lines = [_problem(e, (), top=False) for e in exc.errors(include_url=False)]
        raise PolicyError([f"{key}: layering {names} gives {line}" for line in lines]) from None


@dataclass(frozen=True)
class PolicySet:
    """Defaults, pattern rules and environment overrides; :meth:`for_task` resolves them."""

    defaults: TaskPolicy = field(default_factory=TaskPolicy)
    rules: tuple[PolicyRule, ...] = ()
    overrides: TaskPolicy = field(default_factory=TaskPolicy)
    source: Path | None = None
    _cache: dict[str, TaskPolicy] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def from_mapping(cls, data: Any, *, source: Path | None = None, label: str | None = None,
                     environ: Mapping[str, str] | None = None) -> PolicySet:
        """Validate a parsed policy table (top-level defaults plus ``tasks``); raise :class:`PolicyError`."""
        label = label or (str(source) if source else None)
        if not isinstance(data, Mapping):
            raise PolicyError([f"(top level) = {_show(data)}: expected a table"], source=label)
        problems: list[str] = []
        tasks = data.get("tasks", {})
        defaults = _validate({k: v for k, v in data.items() if k != "tasks"}, (), problems, top=True)
        rules: list[PolicyRule] = []
        if not isinstance(tasks, Mapping):
            problems.append(f'tasks = {_show(tasks)}: expected a table of task patterns, e.g. tasks."etl_daily.*"')
            tasks = {}
        for order, (pattern, body) in enumerate(tasks.items()):
            if not any(c in pattern for c in ".*?["):
                problems.append(f"{_path(('tasks', pattern))}: expected a pattern for \"pipeline_id.task_id\" "
                                'with optional wildcards, e.g. "etl_daily.transform_*", "my_flow.*" or "*"')
            rules.append(PolicyRule(pattern, _validate(body, ("tasks", pattern), problems), order))
        if problems:
            raise PolicyError(problems, source=label)
        overrides = _env_overrides(os.environ if environ is None else environ)
        policies = cls(defaults, tuple(rules), overrides, source)
        for pattern, _, chain in policies._rows_rules():  # conflicts between layers fail now, not mid-run
            try:
                policies._resolve(pattern, chain)
            except PolicyError as exc:
                problems += exc.problems
        if problems:
            raise PolicyError(problems, source=label)
        return policies

    def matching_rules(self, pipeline_id: str, task_id: str) -> list[PolicyRule]:
        """The rules that apply to a task, in layering order (least specific first)."""
        key = f"{pipeline_id}.{task_id}"
        return sorted((r for r in self.rules if r.matches(key)), key=lambda r: r.specificity)

    def for_task(self, pipeline_id: str, task_id: str) -> TaskPolicy:
        """The resolved policy for one task; see the module docstring for precedence.

        Raises :class:`PolicyError` if overlapping patterns give it ``min_allowed > max_allowed``.
        """
        key = f"{pipeline_id}.{task_id}"
        if key not in self._cache:
            self._cache[key] = self._resolve(key, self.matching_rules(pipeline_id, task_id))
        return self._cache[key]

    def _resolve(self, key: str, rules: Sequence[PolicyRule]) -> TaskPolicy:
        layers = [("defaults", self.defaults)]
        layers += [(_path(("tasks", r.pattern)), r.policy) for r in rules]
        try:
            return _merge(layers + [("environment", self.overrides)], key)
        except PolicyError as exc:  # overlapping wildcards can conflict for a task no load-time check saw
            raise PolicyError(exc.problems, source=str(self.source) if self.source else None) from None

    def _rows_rules(self) -> list[tuple[str, TaskPolicy, list[PolicyRule]]]:
        out: list[tuple[str, TaskPolicy, list[PolicyRule]]] = [("(defaults)", self.defaults, [])]
        for rule in self.rules:
            under = [r for r in self.rules if r.matches(rule.pattern) and r.specificity < rule.specificity]
            out.append((rule.pattern, rule.policy, sorted(under, key=lambda r: r.specificity) + [rule]))
        return out

    def rows(self, *, human: bool = False) -> list[dict[str, Any]]:
        """One dict per pattern (plus ``(defaults)`` first), resolved, for a table or JSON.

        ``pattern`` resolves as a task named like the pattern would; ``sets`` lists
        the fields the pattern itself sets. Sizes are bytes, or strings when ``human``.
        """
        size = (lambda n: None if n is None else format_bytes(n)) if human else (lambda n: n)
        out = []
        for pattern, own, rules in self._rows_rules():
            p = self._resolve(pattern, rules)
            out.append({
                "pattern": pattern, "mode": p.mode, "mirror": p.mirror, "sample_fraction": p.sample_fraction,
                "headroom": p.headroom, "memory_min": size(p.memory.min_allowed),
                "memory_max": size(p.memory.max_allowed), "cpu_min": p.cpu.min_allowed,
                "cpu_max": p.cpu.max_allowed, "pool": p.pool, "pool_slot_memory": size(p.pool_slot_memory),
                "priority_min": p.priority.min_allowed, "priority_max": p.priority.max_allowed,
                "queue": p.queue, "features": list(p.features), "default_memory": size(p.default_memory),
                "sets": sorted(own.model_fields_set),
            })
        return out

    def describe(self) -> str:
        """A plain-text table of :meth:`rows` (human sizes), headed by the source and environment overrides."""
        rows = self.rows(human=True)
        cols = [c for c in rows[0] if c != "sets"]
        cells = [cols] + [["-" if r[c] in (None, []) else ", ".join(r[c]) if isinstance(r[c], list) else str(r[c])
                          for c in cols] for r in rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
        env = self.overrides.model_dump(include=self.overrides.model_fields_set)
        head = [f"source: {self.source or 'built-in defaults'}"] + ([f"environment overrides: {env}"] if env else [])
        return "\n".join(head + ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells])


_ENV = {"MIRRORSCALE_MODE": "mode", "MIRRORSCALE_MIRROR": "mirror",
        "MIRRORSCALE_SAMPLE_FRACTION": "sample_fraction", "MIRRORSCALE_HEADROOM": "headroom"}
_BOOLS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def _number(raw: str) -> float | str:
    try:
        return float(raw)
    except ValueError:
        return raw


def _env_overrides(environ: Mapping[str, str]) -> TaskPolicy:
    values: dict[str, Any] = {}
    shown: dict[str, str] = {}
    for var, name in _ENV.items():
        raw = (environ.get(var) or "").strip()
        if raw:
            shown[name] = f"{var}={raw!r}"
            values[name] = {"mirror": lambda r: _BOOLS.get(r.lower(), r), "mode": str}.get(name, _number)(raw)
    try:
        return TaskPolicy.model_validate(values)
    except ValidationError as exc:
        lines = [f"{shown[e['loc'][0]]}: expected {_HINTS[e['loc'][0]]}" for e in exc.errors(include_url=False)]
        raise PolicyError(lines, source="environment") from None


def _load(path: Path, environ: Mapping[str, str], *, required: bool) -> PolicySet | None:
    pyproject = path.name == "pyproject.toml"
    label = f"{path} [tool.mirrorscale]" if pyproject else str(path)
    if not path.is_file():
        raise PolicyError(["no such file"], source=str(path))
    try:
        data: Any = tomllib.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError([f"cannot read: {exc}"], source=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError([f"TOML syntax error: {exc}"], source=str(path)) from None
    if pyproject:
        data = data["tool"].get("mirrorscale") if isinstance(data.get("tool"), dict) else None
        if data is None and not required:
            return None
        if data is None:
            raise PolicyError(["no [tool.mirrorscale] table"], source=str(path))
    return PolicySet.from_mapping(data, source=path, label=label, environ=environ)


def load_policies(path: str | Path | None = None, *, environ: Mapping[str, str] = os.environ) -> PolicySet:
    """Load a :class:`PolicySet` from ``path`` or the default lookup (see the module docstring).

    A file named ``pyproject.toml`` is read from ``[tool.mirrorscale]``, any other
    file from its top level. Raises :class:`PolicyError` for a missing or bad file,
    a ``pyproject.toml`` without the table, or bad ``MIRRORSCALE_*`` values.
    """
    if path is not None:
        return _load(Path(path), environ, required=True)  # type: ignore[return-value]
    env_file = (environ.get("MIRRORSCALE_POLICY_FILE") or "").strip()
    if env_file:
        if not Path(env_file).is_file():
            raise PolicyError([f"MIRRORSCALE_POLICY_FILE={env_file!r}: no such file"], source="environment")
        return _load(Path(env_file), environ, required=True)  # type: ignore[return-value]
    for name in ("mirrorscale.toml", "pyproject.toml"):
        found = _load(Path.cwd() / name, environ, required=False) if (Path.cwd() / name).is_file() else None
        if found is not None:
            return found
    return PolicySet.from_mapping({}, environ=environ)
