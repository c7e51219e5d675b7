"""Tests for mirrorscale.policy: byte sizes, pattern layering, loading, env overrides, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mirrorscale.policy import (
    MODES,
    PolicyError,
    PolicyRule,
    PolicySet,
    TaskPolicy,
    format_bytes,
    load_policies,
    parse_byte_size,
)

DATA = Path(__file__).parent / "data"
GiB, MiB = 1024**3, 1024**2
NO_ENV: dict[str, str] = {}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def policies(text: str, tmp_path: Path, environ: dict[str, str] | None = None) -> PolicySet:
    return load_policies(write(tmp_path / "mirrorscale.toml", text), environ=environ or NO_ENV)


def error_of(text: str, tmp_path: Path, name: str = "mirrorscale.toml", environ=NO_ENV) -> str:
    path = write(tmp_path / name, text)
    with pytest.raises(PolicyError) as info:
        load_policies(path, environ=environ)
    assert not isinstance(info.value, ValidationError)
    message = str(info.value)
    assert str(path) in message
    assert "Traceback" not in message and "pydantic" not in message.lower()
    return message


# --- byte sizes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0), (1024, 1024), ("1024", 1024), ("512MiB", 512 * MiB), ("2GiB", 2 * GiB),
        ("1.5GB", 1_500_000_000), ("800M", 800_000_000), ("1.5 GiB", 3 * GiB // 2), ("512mi", 512 * MiB),
        ("4k", 4000), ("4KiB", 4096), ("1TiB", 1024**4), (" 7 B ", 7), (1.6e9, 1_600_000_000), (".5Ki", 512),
    ],
)
def test_parse_byte_size(value, expected):
    assert parse_byte_size(value) == expected


@pytest.mark.parametrize("value", ["", "lots", "12 parsecs", "-1GiB", "1e9", "GiB", -5, float("nan"),
                                   float("inf"), True, None, [1], "1.2.3M"])
def test_parse_byte_size_rejects(value):
    with pytest.raises(ValueError):
        parse_byte_size(value)


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1 KiB"), (3 * GiB // 2, "1.5 GiB"), (512 * MiB, "512 MiB"),
     (1024**4 * 3, "3 TiB"), (-2 * GiB, "-2 GiB"), (1024 * MiB - 1, "1 GiB")],
)
def test_format_bytes(n, text):
    assert format_bytes(n) == text


@given(st.integers(min_value=0, max_value=2**62))
def test_format_then_parse_is_close(n):
    back = parse_byte_size(format_bytes(n))
    assert abs(back - n) <= max(1, n * 0.005)


# --- models -------------------------------------------------------------------------------------


def test_task_policy_defaults_and_strictness():
    policy = TaskPolicy()
    assert (policy.mode, policy.mirror, policy.sample_fraction, policy.headroom) == ("observe", False, 0.05, 0.15)
    assert policy.memory.min_allowed is None and policy.pool is None and policy.features == ()
    with pytest.raises(ValidationError):
        TaskPolicy(modee="enforce")  # extra="forbid" catches typos
    with pytest.raises(ValidationError):
        policy.mode = "enforce"  # frozen
    with pytest.raises(ValidationError):
        TaskPolicy(headroom=True)  # a bool is not a number
    with pytest.raises(ValidationError):
        TaskPolicy(memory={"min_allowed": "2GiB", "max_allowed": "1GiB"})


def test_task_policy_parses_sizes_and_helpers():
    policy = TaskPolicy(memory={"min_allowed": "256MiB", "max_allowed": 2 * GiB}, pool_slot_memory="1GiB",
                        cpu={"max_allowed": 4}, mode="ENFORCE", pool="")
    assert policy.memory.min_allowed == 256 * MiB and policy.mode == "enforce" and policy.pool is None
    assert policy.memory.clamp(10) == 256 * MiB and policy.memory.clamp(5 * GiB) == 2 * GiB
    assert policy.cpu.clamp(0.1) == 0.1 and policy.cpu.clamp(9.0) == 4
    assert policy.pool_slots_for(1) == 1 and policy.pool_slots_for(GiB) == 1 and policy.pool_slots_for(GiB + 1) == 2
    assert TaskPolicy().pool_slots_for(50 * GiB) == 1


# --- patterns and layering ----------------------------------------------------------------------


def rule(pattern: str, order: int, **fields) -> PolicyRule:
    return PolicyRule(pattern, TaskPolicy(**fields), order)


def test_exact_beats_wildcard_even_when_listed_first():
    ps = PolicySet(rules=(rule("a.b", 0, mode="enforce"), rule("a.b*", 1, mode="recommend")))
    assert ps.for_task("a", "b").mode == "enforce"
    assert ps.for_task("a", "bc").mode == "recommend"


def test_more_literal_characters_win_regardless_of_file_order():
    ps = PolicySet(rules=(
        rule("etl_daily.transform_*", 0, headroom=0.5),
        rule("etl_daily.*", 1, headroom=0.3),
        rule("*", 2, headroom=0.1),
    ))
    assert ps.for_task("etl_daily", "transform_users").headroom == 0.5
    assert ps.for_task("etl_daily", "load").headroom == 0.3
    assert ps.for_task("other", "x").headroom == 0.1
    assert [r.pattern for r in ps.matching_rules("etl_daily", "transform_users")] == [
        "*", "etl_daily.*", "etl_daily.transform_*"]


def test_wildcards_do_not_count_as_literal_characters():
    # "a.?????" has 2 literals, "a.x*" has 3: the latter is more specific although it is shorter.
    ps = PolicySet(rules=(rule("a.x*", 0, pool="short"), rule("a.?????", 1, pool="long")))
    assert ps.for_task("a", "xyzab").pool == "short"


def test_ties_go_to_the_later_rule():
    ps = PolicySet(rules=(rule("etl.t*", 0, queue="first"), rule("etl.*m", 1, queue="second")))
    assert ps.for_task("etl", "transform").queue == "second"
    ps = PolicySet(rules=(rule("etl.*m", 0, queue="first"), rule("etl.t*", 1, queue="second")))
    assert ps.for_task("etl", "transform").queue == "second"


def test_field_wise_layering_and_bound_merging():
    ps = PolicySet(
        defaults=TaskPolicy(headroom=0.2, memory={"min_allowed": "128MiB"}),
        rules=(
            rule("*", 0, queue="default"),
            rule("etl_daily.*", 1, pool="etl"),
            rule("etl_daily.transform_*", 2, mode="enforce", memory={"max_allowed": "8GiB"}),
            rule("etl_daily.transform_users", 3, memory={"max_allowed": "2GiB"}),
        ),
    )
    p = ps.for_task("etl_daily", "transform_users")
    assert (p.mode, p.pool, p.queue, p.headroom) == ("enforce", "etl", "default", 0.2)
    assert (p.memory.min_allowed, p.memory.max_allowed) == (128 * MiB, 2 * GiB)
    q = ps.for_task("etl_daily", "transform_orders")
    assert q.memory.max_allowed == 8 * GiB and q.mirror is False and q.sample_fraction == 0.05
    r = ps.for_task("other", "x")
    assert (r.mode, r.pool, r.queue, r.memory.max_allowed) == ("observe", None, "default", None)


def test_conflict_only_a_task_can_reveal_fails_when_resolving_it(tmp_path):
    ps = policies('[tasks."a.x*"]\nmemory = { max_allowed = "1GiB" }\n'
                  '[tasks."*.xyz"]\nmemory = { min_allowed = "2GiB" }\n', tmp_path)
    assert ps.for_task("a", "xy").memory.max_allowed == GiB
    with pytest.raises(PolicyError) as info:
        ps.for_task("a", "xyz")
    assert "a.xyz" in str(info.value) and "mirrorscale.toml" in str(info.value)


def test_matching_is_case_sensitive_and_handles_dotted_task_ids():
    ps = PolicySet(rules=(rule("ETL.*", 0, mode="enforce"), rule("dag.group.*", 1, mode="recommend")))
    assert ps.for_task("etl", "x").mode == "observe"
    assert ps.for_task("dag", "group.inner").mode == "recommend"


def test_example_file_resolves_as_documented():
    ps = load_policies(DATA / "policy_example.toml", environ=NO_ENV)
    users = ps.for_task("etl_daily", "transform_users")
    assert (users.mode, users.mirror, users.sample_fraction, users.pool, users.queue) == (
        "enforce", True, 0.02, "etl", "highmem")
    assert (users.memory.min_allowed, users.memory.max_allowed) == (256 * MiB, 2 * GiB)
    assert users.features == ("partition_date", "source_uri") and users.priority.max_allowed == 50
    assert ps.for_task("nightly_report", "render").default_memory == 512 * MiB
    assert ps.for_task("x", "y").mode == "recommend"


# --- loading ------------------------------------------------------------------------------------

SECTION = 'mode = "enforce"\n[tasks."p.*"]\nmirror = true\n'


def test_pyproject_uses_tool_section_and_mirrorscale_toml_top_level(tmp_path):
    pyproject = write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n[tool.mirrorscale]\n' + SECTION.replace(
        "[tasks", "[tool.mirrorscale.tasks"))
    own = write(tmp_path / "mirrorscale.toml", SECTION)
    for path in (pyproject, own, str(own)):
        ps = load_policies(path, environ=NO_ENV)
        assert ps.for_task("p", "t").mode == "enforce" and ps.for_task("p", "t").mirror is True
        assert ps.source == Path(path)


def test_explicit_pyproject_without_section_or_missing_file_fails(tmp_path):
    path = write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n')
    with pytest.raises(PolicyError, match=r"no \[tool.mirrorscale\] table") as info:
        load_policies(path, environ=NO_ENV)
    assert str(path) in str(info.value)
    with pytest.raises(PolicyError, match="no such file"):
        load_policies(tmp_path / "missing.toml", environ=NO_ENV)


def test_default_lookup_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_policies(environ=NO_ENV).source is None  # nothing there: built-in defaults
    assert load_policies(environ=NO_ENV).for_task("p", "t") == TaskPolicy()
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n')  # no section: skipped
    assert load_policies(environ=NO_ENV).source is None
    write(tmp_path / "pyproject.toml", '[tool.mirrorscale]\nmode = "recommend"\n')
    assert load_policies(environ=NO_ENV).for_task("p", "t").mode == "recommend"
    write(tmp_path / "mirrorscale.toml", 'mode = "enforce"\n')  # beats pyproject.toml
    assert load_policies(environ=NO_ENV).for_task("p", "t").mode == "enforce"
    other = write(tmp_path / "elsewhere.toml", 'mirror = true\n')  # the variable beats both
    ps = load_policies(environ={"MIRRORSCALE_POLICY_FILE": str(other)})
    assert ps.source == other and ps.for_task("p", "t").mirror is True and ps.for_task("p", "t").mode == "observe"
    ps = load_policies(environ={"MIRRORSCALE_POLICY_FILE": "elsewhere.toml"})  # relative to cwd
    assert ps.for_task("p", "t").mirror is True
    assert load_policies(environ={"MIRRORSCALE_POLICY_FILE": "  "}).for_task("p", "t").mode == "enforce"


def test_default_lookup_uses_os_environ(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("MIRRORSCALE_POLICY_FILE", "MIRRORSCALE_MODE", "MIRRORSCALE_MIRROR",
                "MIRRORSCALE_SAMPLE_FRACTION", "MIRRORSCALE_HEADROOM"):
        monkeypatch.delenv(var, raising=False)
    write(tmp_path / "mirrorscale.toml", 'mode = "enforce"\n')
    assert load_policies().for_task("p", "t").mode == "enforce"
    monkeypatch.setenv("MIRRORSCALE_MODE", "observe")
    assert load_policies().for_task("p", "t").mode == "observe"


def test_policy_file_variable_pointing_nowhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PolicyError) as info:
        load_policies(environ={"MIRRORSCALE_POLICY_FILE": "nope.toml"})
    assert "MIRRORSCALE_POLICY_FILE" in str(info.value) and "nope.toml" in str(info.value)


# --- environment overrides ----------------------------------------------------------------------


def test_env_kill_switches_override_defaults_and_every_pattern(tmp_path):
    text = ('mode = "recommend"\nheadroom = 0.2\n[tasks."p.t"]\nmode = "enforce"\nmirror = true\n'
            "sample_fraction = 0.3\nheadroom = 0.5\n")
    env = {"MIRRORSCALE_MODE": " OBSERVE ", "MIRRORSCALE_MIRROR": "0",
           "MIRRORSCALE_SAMPLE_FRACTION": "0.01", "MIRRORSCALE_HEADROOM": "1"}
    ps = policies(text, tmp_path, env)
    for task in ("t", "other"):
        p = ps.for_task("p", task)
        assert (p.mode, p.mirror, p.sample_fraction, p.headroom) == ("observe", False, 0.01, 1.0)
    assert ps.rows()[0]["mode"] == "observe" and "MIRRORSCALE" not in ps.describe()
    assert "environment overrides" in ps.describe()
    assert policies(text, tmp_path, {"MIRRORSCALE_MIRROR": "yes"}).for_task("x", "y").mirror is True
    assert policies(text, tmp_path, {"MIRRORSCALE_MODE": ""}).for_task("p", "t").mode == "enforce"


@pytest.mark.parametrize(
    ("var", "value", "allowed"),
    [
        ("MIRRORSCALE_MODE", "panic", "observe, recommend, enforce"),
        ("MIRRORSCALE_MIRROR", "maybe", "true or false"),
        ("MIRRORSCALE_SAMPLE_FRACTION", "0.9", "0 < sample_fraction <= 0.5"),
        ("MIRRORSCALE_SAMPLE_FRACTION", "half", "0 < sample_fraction <= 0.5"),
        ("MIRRORSCALE_HEADROOM", "-1", "from 0 to 10"),
        ("MIRRORSCALE_HEADROOM", "nan", "from 0 to 10"),
    ],
)
def test_bad_env_values_name_the_variable(tmp_path, var, value, allowed):
    with pytest.raises(PolicyError) as info:
        policies('mode = "enforce"\n', tmp_path, {var: value})
    message = str(info.value)
    assert var in message and value in message and allowed in message


# --- errors in files ----------------------------------------------------------------------------


def test_unknown_field_is_named_with_suggestion(tmp_path):
    message = error_of('[tasks."etl_daily.transform_*"]\nmirorr = true\n', tmp_path)
    assert 'tasks."etl_daily.transform_*".mirorr' in message
    assert "unknown field" in message and "did you mean mirror?" in message and "sample_fraction" in message
    message = error_of('memory = { max_alowed = "1GiB" }\n', tmp_path)
    assert "memory.max_alowed" in message and "did you mean max_allowed?" in message


def test_bad_mode(tmp_path):
    message = error_of('[tasks."etl_daily.transform_*"]\nmode = "yolo"\n', tmp_path)
    assert 'tasks."etl_daily.transform_*".mode = "yolo"' in message
    assert "expected one of observe, recommend, enforce" in message


def test_bad_byte_size_in_pyproject(tmp_path):
    text = '[tool.mirrorscale.tasks."etl_daily.transform_*"]\nmemory = { max_allowed = "lots" }\n'
    message = error_of(text, tmp_path, name="pyproject.toml")
    assert 'tasks."etl_daily.transform_*".memory.max_allowed = "lots"' in message
    assert "a byte size such as 512MiB or 2GiB" in message and "[tool.mirrorscale]" in message


def test_min_greater_than_max_in_one_table(tmp_path):
    message = error_of('[tasks."a.*"]\nmemory = { min_allowed = "2GiB", max_allowed = "1GiB" }\n', tmp_path)
    assert 'tasks."a.*".memory' in message and "min_allowed (2 GiB) is greater than max_allowed (1 GiB)" in message
    message = error_of("cpu = { min_allowed = 8, max_allowed = 2 }\n", tmp_path)
    assert "cpu: min_allowed (8.0) is greater than max_allowed (2.0)" in message


def test_min_greater_than_max_across_layers_fails_at_load(tmp_path):
    message = error_of('memory = { min_allowed = "4GiB" }\n[tasks."a.*"]\nmemory = { max_allowed = "1GiB" }\n',
                       tmp_path)
    assert "a.*" in message and "defaults" in message and "min_allowed (4 GiB)" in message


@pytest.mark.parametrize("value", ["0", "0.6", "-0.1", "nan", '"a lot"', "true"])
def test_sample_fraction_out_of_range(tmp_path, value):
    message = error_of(f'[tasks."a.*"]\nsample_fraction = {value}\n', tmp_path)
    assert 'tasks."a.*".sample_fraction' in message and "0 < sample_fraction <= 0.5" in message


@pytest.mark.parametrize(
    ("line", "path", "allowed"),
    [
        ("headroom = 11", "headroom = 11", "from 0 to 10"),
        ('mirror = "sometimes"', 'mirror = "sometimes"', "true or false"),
        ("cpu = { max_allowed = -1 }", "cpu.max_allowed = -1", "CPU cores >= 0"),
        ("priority = { min_allowed = 1.5 }", "priority.min_allowed = 1.5", "an integer"),
        ('features = ["a", 3]', "features[1] = 3", "parameter names"),
        ("pool_slot_memory = 0", "pool_slot_memory = 0", "greater than 0"),
        ("memory = 5", "memory = 5", "min_allowed"),
        ("tasks = 5", "tasks = 5", "table of task patterns"),
        ('[tasks]\n"a.*" = 5', 'tasks."a.*" = 5', "a table of policy fields"),
        ('[tasks."etl_daily"]\nmode = "enforce"', 'tasks."etl_daily"', "pipeline_id.task_id"),
    ],
)
def test_other_bad_values(tmp_path, line, path, allowed):
    message = error_of(line + "\n", tmp_path)
    assert path in message and allowed in message


def test_all_problems_are_reported_together(tmp_path):
    error = None
    try:
        policies('mode = "x"\nheadroom = -1\n[tasks."a.*"]\nmirorr = 1\n', tmp_path)
    except PolicyError as exc:
        error = exc
    assert error is not None and len(error.problems) == 3 and isinstance(error, ValueError)


def test_toml_syntax_error_names_file_and_line(tmp_path):
    message = error_of('mode = "enforce"\nheadroom = 0.2\nmirror = \n', tmp_path)
    assert "TOML syntax error" in message and "line 3" in message
    message = error_of('[tool.mirrorscale]\nmode = "enforce\n', tmp_path, name="pyproject.toml")
    assert "line 2" in message


def test_non_utf8_file(tmp_path):
    path = tmp_path / "mirrorscale.toml"
    path.write_bytes(b'mode = "\xff"\n')
    with pytest.raises(PolicyError, match="cannot read"):
        load_policies(path, environ=NO_ENV)


# --- rendering ----------------------------------------------------------------------------------


def test_rows_and_describe():
    ps = load_policies(DATA / "policy_example.toml", environ=NO_ENV)
    rows = ps.rows()
    assert [r["pattern"] for r in rows] == [
        "(defaults)", "etl_daily.*", "etl_daily.transform_*", "etl_daily.transform_users", "nightly_report.*"]
    expected_keys = {"pattern", "mode", "mirror", "sample_fraction", "headroom", "memory_min", "memory_max",
                     "cpu_min", "cpu_max", "pool", "pool_slot_memory", "priority_min", "priority_max", "queue",
                     "features", "default_memory", "sets"}
    assert all(set(r) == expected_keys for r in rows)
    users = rows[3]
    assert (users["mode"], users["pool"], users["memory_min"], users["memory_max"]) == (
        "enforce", "etl", 256 * MiB, 2 * GiB)
    assert users["sets"] == ["memory", "priority", "queue"]
    assert rows[0]["memory_max"] == 16 * GiB and rows[1]["mode"] == "recommend"
    json.dumps(rows)
    assert ps.rows(human=True)[3]["memory_max"] == "2 GiB"
    text = ps.describe()
    assert "etl_daily.transform_users" in text and "2 GiB" in text and str(DATA) in text
    assert len(PolicySet().rows()) == 1 and "built-in defaults" in PolicySet().describe()


# --- property: any TOML-ish dict loads or fails with PolicyError ---------------------------------


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_value(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"


FIELDS = ["mode", "mirror", "sample_fraction", "memory", "cpu", "headroom", "pool", "pool_slot_memory",
          "priority", "queue", "features", "default_memory", "min_allowed", "max_allowed", "tasks"]
keys = st.sampled_from(FIELDS) | st.text(max_size=8)
scalars = (
    st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | st.text(max_size=10)
    | st.sampled_from([*MODES, "512MiB", "2GiB", "1.5GB", "800M", "lots", "", "0.1"])
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=4), max_leaves=12)
patterns = st.sampled_from(["*", "a.*", "a.b", "a.[bc]", "x?y", "a.b*", "*.b"]) | st.text(max_size=8)
sizes = st.sampled_from(["512MiB", "2GiB", "1.5GB", "800M", "1", "1GiB", "4GiB", "lots"]) | st.integers(1, 2**33)
bounds = st.fixed_dictionaries({}, optional={"min_allowed": sizes, "max_allowed": sizes})
plausible = st.fixed_dictionaries({}, optional={  # mostly valid tables, to exercise layering and conflicts
    "mode": st.sampled_from([*MODES, "Enforce", "nope"]), "mirror": st.booleans(),
    "sample_fraction": st.floats(0.001, 0.51), "headroom": st.floats(0, 10.2), "memory": bounds,
    "cpu": st.fixed_dictionaries({}, optional={"min_allowed": st.floats(0, 8), "max_allowed": st.floats(0, 8)}),
    "priority": st.fixed_dictionaries({}, optional={"min_allowed": st.integers(-5, 5),
                                                    "max_allowed": st.integers(-5, 5)}),
    "pool": st.text(max_size=4), "pool_slot_memory": sizes, "default_memory": sizes,
    "features": st.lists(st.text(max_size=4), max_size=3)})
documents = (st.dictionaries(keys, values, max_size=6) | plausible | plausible).flatmap(
    lambda top: st.one_of(
        st.just(top),
        st.dictionaries(patterns, st.one_of(plausible, plausible, st.dictionaries(keys, values, max_size=4),
                                            values), max_size=4).map(lambda tasks: {**top, "tasks": tasks}),
    ))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=documents, pyproject=st.booleans())
def test_any_document_loads_or_raises_policy_error(tmp_path, doc, pyproject):
    lines = [f"{toml_value(str(k))} = {toml_value(v)}" for k, v in doc.items()]
    name = "pyproject.toml" if pyproject else "mirrorscale.toml"
    text = ("[tool.mirrorscale]\n" if pyproject else "") + "\n".join(lines) + "\n"
    path = write(tmp_path / name, text)
    try:
        ps = load_policies(path, environ=NO_ENV)
    except PolicyError as exc:
        assert not isinstance(exc, ValidationError) and str(path) in str(exc)
        return
    ps.rows()
    ps.describe()
    for pattern in doc.get("tasks", {}):
        ps.for_task(*(str(pattern) + ".x").split(".", 1))
    assert isinstance(ps.for_task("a", "b"), TaskPolicy)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.sampled_from(list('abmode=[]{}."*\n 0.5#tasks')), max_size=60))
def test_any_text_loads_or_raises_policy_error(tmp_path, text):
    path = write(tmp_path / "mirrorscale.toml", text)
    try:
        load_policies(path, environ=NO_ENV).rows()
    except PolicyError as exc:
        assert str(path) in str(exc)


CHAIN = ["*", "a.*", "a.b*", "a.b"]  # least to most specific
SIZES = ["1GiB", "2GiB", "3GiB"]
size_bounds = st.fixed_dictionaries({}, optional={"min_allowed": st.sampled_from(SIZES),
                                                  "max_allowed": st.sampled_from(SIZES)})


@settings(max_examples=300, deadline=None)
@given(defaults=size_bounds, tables=st.lists(st.tuples(st.sampled_from(CHAIN), size_bounds), unique_by=lambda t: t[0]))
def test_layered_bounds_match_a_reference(defaults, tables):
    """Bounds merge per bound from least to most specific; a conflicting layering fails at load time."""
    by_pattern = dict(tables)

    def reference(matching):  # apply the bounds tables in order, then parse
        merged = dict(defaults)
        for pattern in matching:
            merged.update(by_pattern.get(pattern, {}))
        return tuple(parse_byte_size(merged[k]) if k in merged else None for k in ("min_allowed", "max_allowed"))

    chains = [CHAIN[:n] for n in range(len(CHAIN) + 1)]
    conflict = any(lo is not None and hi is not None and lo > hi for lo, hi in map(reference, chains))
    data = {"memory": defaults, "tasks": {pattern: {"memory": bounds} for pattern, bounds in tables}}
    try:
        ps = PolicySet.from_mapping(data, environ=NO_ENV)
    except PolicyError as exc:
        assert conflict and all("greater than max_allowed" in p for p in exc.problems)
        return
    assert not conflict
    for task, matching in (("b", CHAIN), ("bc", CHAIN[:3]), ("z", CHAIN[:2])):
        memory = ps.for_task("a", task).memory
        assert (memory.min_allowed, memory.max_allowed) == reference(matching)


def test_a_policy_names_samplers_per_argument() -> None:
    policies = PolicySet.from_mapping({"samplers": {"0": "rows"},
                                       "tasks": {"etl.group": {"samplers": {"0": "hash:user_id", "dim": "m.x:keep"}}}})
    assert policies.for_task("etl", "group").samplers == (("0", "hash:user_id"), ("dim", "m.x:keep"))
    assert policies.for_task("etl", "other").samplers == (("0", "rows"),)
    assert hash(policies.for_task("etl", "group"))  # policies stay hashable
    with pytest.raises(PolicyError, match="samplers"):
        PolicySet.from_mapping({"tasks": {"etl.group": {"samplers": {"0": "by key please"}}}})
