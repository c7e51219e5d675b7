"""Policy files and trace files fuzzed with hypothesis: a clear error naming the file and field, or success.

Never another exception, never a half-written import.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mirrorscale.nextflow import REQUIRED_COLUMNS, TraceFormatError
from mirrorscale.policy import PolicyError, PolicySet, load_policies
from mirrorscale.store.history import HistoryStore
from mirrorscale.trace_import import TraceImportError, import_traces

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))

# -- policy files --------------------------------------------------------------

POLICY_KEYS = ["mode", "mirror", "sample_fraction", "headroom", "pool", "pool_slot_memory", "queue", "features",
               "default_memory", "memory", "cpu", "priority", "min_allowed", "max_allowed", "bogus", "tasks"]
BOUND_KEYS = ["min_allowed", "max_allowed", "step", "oops"]

scalars = st.one_of(
    st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["observe", "recommend", "enforce", "512MiB", "2GiB", "lots", "-1GiB", "1e400", "", "0",
                     "<script>alert(1)</script>", "'; DROP TABLE mirrorscale_task; --", "1.5", "inf"]),
    st.text(max_size=12),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3),
                   st.dictionaries(st.sampled_from(BOUND_KEYS), scalars, max_size=3))


def toml_value(value: object) -> str:
    """``value`` as TOML (floats that TOML spells differently included)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)  # beyond 64 bits: a TOML syntax error, which must be a PolicyError too
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


policy_docs = st.tuples(
    st.dictionaries(st.sampled_from(POLICY_KEYS[:-1]), values, max_size=5),
    st.dictionaries(st.sampled_from(["etl.*", "etl.load", "*", "a.b<script>", ""]),
                    st.dictionaries(st.sampled_from(POLICY_KEYS[:-1]), values, max_size=3), max_size=2),
)


@FUZZ
@given(doc=policy_docs)
def test_fuzzed_policy_files_load_or_name_the_file_and_field(tmp_path_factory: pytest.TempPathFactory,
                                                             doc: tuple[dict, dict]) -> None:
    top, tasks = doc
    lines = [f"{key} = {toml_value(value)}" for key, value in top.items()]
    for pattern, table in tasks.items():
        lines.append(f"[tasks.{json.dumps(pattern)}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in table.items()]
    path = tmp_path_factory.mktemp("policy") / "mirrorscale.toml"
    path.write_text("\n".join(lines) + "\n")
    try:
        policies = load_policies(path, environ={})
    except PolicyError as exc:
        message = str(exc)
        assert str(path) in message
        if "TOML syntax error" not in message:
            named = set(top) | {f"tasks.{json.dumps(p)}" for p in tasks} | {k for t in tasks.values() for k in t}
            assert any(name in message for name in named), message
        return
    assert isinstance(policies, PolicySet)
    policies.for_task("etl", "load")  # resolving a task never fails once loaded


@FUZZ
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_as_a_policy_file(tmp_path_factory: pytest.TempPathFactory, raw: bytes) -> None:
    path = tmp_path_factory.mktemp("policy") / "mirrorscale.toml"
    path.write_bytes(raw)
    try:
        load_policies(path, environ={})
    except PolicyError as exc:
        assert str(path) in str(exc)


# -- trace files ---------------------------------------------------------------

COLUMNS = [*REQUIRED_COLUMNS, "task_id", "hash", "name", "status", "exit", "submit", "start", "complete",
           "realtime", "%cpu", "peak_rss", "rss", "memory", "rchar", "wchar", "cpus", "attempt"]
cells = st.one_of(
    st.sampled_from(["-", "", "1", "0", "-1", "12 MB", "1.5 GB", "3m 2s", "2024-05-26 20:01:30", "1716754890000",
                     "COMPLETED", "FAILED", "99999999999999999999999999", "1e308", "nan", "NaN GB", "12 XB",
                     "<script>alert(1)</script>", "x'); DROP TABLE mirrorscale_trace; --", "\"quoted, comma\""]),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n\t,\x00"), max_size=10),
)


@st.composite
def trace_files(draw: st.DrawFn) -> str:
    header = draw(st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=len(COLUMNS), unique=True))
    if draw(st.booleans()):  # most files have the required columns
        header = list(dict.fromkeys([*REQUIRED_COLUMNS, *header]))
    rows = draw(st.lists(st.lists(cells, min_size=len(header), max_size=len(header)), max_size=6))
    sep = draw(st.sampled_from(["\t", ","]))
    return "\n".join(sep.join(r) for r in [header, *rows]) + "\n"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> HistoryStore:
    opened = HistoryStore.open(f"sqlite:///{tmp_path_factory.mktemp('store') / 'fuzz.sqlite'}")
    yield opened
    opened.close()


@FUZZ
@given(content=trace_files(), skip_bad=st.booleans())
def test_fuzzed_trace_files_import_whole_or_not_at_all(store: HistoryStore, tmp_path_factory: pytest.TempPathFactory,
                                                       content: str, skip_bad: bool) -> None:
    path = tmp_path_factory.mktemp("traces") / "run_trace.txt"
    path.write_text(content)
    before = store.count_traces()
    try:
        report = import_traces(store, [path], skip_bad=skip_bad)
    except TraceImportError as exc:
        assert not skip_bad
        assert exc.errors and all(e.path == str(path) and e.line >= 2 and e.column for e in exc.errors)
        assert str(path) in str(exc)
        assert store.count_traces() == before  # nothing half-written
        return
    except TraceFormatError as exc:
        assert str(exc).startswith(str(path)) and exc.path == str(path)
        assert store.count_traces() == before
        return
    assert store.count_traces() == before + report.inserted


@FUZZ
@given(raw=st.binary(max_size=400))
def test_arbitrary_bytes_as_a_trace_file(store: HistoryStore, tmp_path_factory: pytest.TempPathFactory,
                                         raw: bytes) -> None:
    path = tmp_path_factory.mktemp("traces") / "garbage_trace.txt"
    path.write_bytes(raw)
    before = store.count_traces()
    try:
        import_traces(store, [path])
    except (TraceImportError, TraceFormatError) as exc:
        assert str(path) in str(exc)
    assert store.count_traces() >= before
