"""The config: the schema's defaults filled in, unknown keys and wrong types rejected with the key named,
every name checked, and equal values equal (core/configuration.py), so the plan (core/plan.py) is too."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import DEFAULT_CONFIG, SHIPPED_CONFIG, load_test_config, snakemake, write_config
from llamabench.core import configuration, plan
from llamabench.core.configuration import ConfigError


def resolved(config: dict[str, Any]) -> dict[str, Any]:
    return configuration.resolve(copy.deepcopy(config))


def test_default_config_is_valid_and_gets_defaults() -> None:
    config = resolved(SHIPPED_CONFIG)
    assert config["benchmark"]["timeout"] == 1800
    assert config["smoke"]["timeout"] == 600
    assert config["rpc"]["topologies"]["two-cpu"]["workers"][0]["cache"] is False  # a default inside a list


def key_paths(tree: Any, prefix: tuple = (), lists: bool = False) -> list[tuple]:
    """Every key of config.yaml, at every depth; with ``lists``, inside lists too (a worker's threads: 1)."""
    paths = []
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) and lists else []
    for key, value in items:
        if isinstance(tree, dict):
            paths.append((*prefix, key))
        paths += key_paths(value, (*prefix, key), lists)
    return paths


def without(config: dict, path: tuple) -> dict:
    reduced = copy.deepcopy(config)
    parent = reduced
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return reduced


NAMED_MAPS = {("platforms",), ("sources",), ("builds",), ("models",), ("benchmark", "groups"), ("serving", "scenarios"),
              ("rpc", "topologies")}
def is_default(config: dict, path: tuple) -> bool:
    """Whether ``path`` holds a value the schema would fill in by itself."""
    try:
        return resolved(without(config, path)) == resolved(config)
    except ConfigError:
        return False


def test_an_empty_config_is_the_default_config() -> None:
    """The schema is the one source of defaults: config.yaml shows exactly its values."""
    assert resolved({}) == resolved(SHIPPED_CONFIG)


@pytest.mark.parametrize("path", key_paths(SHIPPED_CONFIG), ids=lambda p: ".".join(map(str, p)))
def test_removing_any_key_leaves_the_plan_unchanged(path: tuple) -> None:
    """Deleting a line of config.yaml falls back to the schema's default: the same config, the same plan.

    Entries of a named map (a build, a model, a group) are content, not defaults: removing one drops that
    entry's cells or is rejected naming the key, but never renames a remaining cell. A key inside one that
    equals the schema's default (a worker's ``threads: 1``) is a default like any other. An axis removed from a
    group that crosses single values (kv_cache's q8_0 K with q8_0 V) narrows that group to other cells of its own.
    """
    full = plan.make(resolved(SHIPPED_CONFIG))
    try:
        reduced = resolved(without(SHIPPED_CONFIG, path))
    except ConfigError as err:  # the key, its entry, or the map it emptied is named
        assert any(f"{part}" in str(err) for part in path[-2:]) or f"config key {path[0]}:" in str(err)
        return
    inside_named = any(path[:i] in NAMED_MAPS for i in range(1, len(path)))
    if inside_named and reduced != resolved(SHIPPED_CONFIG):
        smaller = plan.make(reduced)
        narrowed = set()
        if path[:2] == ("benchmark", "groups") and len(path) > 3:
            alone = copy.deepcopy(reduced)
            alone["benchmark"]["groups"] = {path[2]: reduced["benchmark"]["groups"][path[2]]}
            narrowed = {c.key for c in plan.make(alone).planned("bench_cell")}
        for kind in ("bench_cell", "serve_cell", "rpc_cell"):
            assert {c.key for c in smaller.planned(kind)} - narrowed <= {c.key for c in full.planned(kind)}
    else:
        assert plan.make(reduced) == full


def test_about_fifty_keys_are_defaults_and_each_of_them_leaves_the_plan_unchanged() -> None:
    """The issue's count: deleted one at a time, every default key gives the identical plan."""
    defaults = [path for path in key_paths(SHIPPED_CONFIG, lists=True) if is_default(SHIPPED_CONFIG, path)]
    assert len(defaults) >= 45, len(defaults)
    full = plan.make(resolved(SHIPPED_CONFIG))
    assert all(plan.make(resolved(without(SHIPPED_CONFIG, path))) == full for path in defaults)
    assert ("rpc", "topologies", "two-cpu", "workers", 0, "threads") in defaults


def sorted_deeply(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: sorted_deeply(value[key]) for key in sorted(value, reverse=True)}
    if isinstance(value, list):
        return [sorted_deeply(item) for item in value]
    return value


@pytest.mark.parametrize("config", [SHIPPED_CONFIG, load_test_config(), load_test_config("failure")],
                         ids=["default", "test", "failure"])
def test_key_order_at_any_depth_changes_nothing(config: dict) -> None:
    """What any YAML tool may do to config.yaml: the same values in another key order, dicts in lists included."""
    shuffled = yaml.safe_load(yaml.safe_dump(sorted_deeply(config), sort_keys=False))
    assert resolved(shuffled) == resolved(config)
    assert plan.make(resolved(shuffled)) == plan.make(resolved(config))


def test_a_schema_default_that_differs_from_config_yaml_is_caught() -> None:
    """The check above can fail: a config that differs from a default is not the default config."""
    changed = copy.deepcopy(SHIPPED_CONFIG)
    changed["benchmark"]["repetitions"] = 5
    assert resolved(changed) != resolved({})
    assert plan.make(resolved(changed)).bench != plan.make(resolved({})).bench


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (lambda c: c["benchmark"].update(treads=[1]), "treads"),
        (lambda c: c["benchmark"]["defaults"].update(threads="two"), "benchmark.defaults.threads"),
        (lambda c: c["models"]["gemma3-270m"].update(revison="main"), "revison"),
        (lambda c: c["builds"]["cpu"].update(cmake_options="-DGGML_RPC=ON"), "builds.cpu.cmake_options"),
        (lambda c: c["sources"]["main"].update(kind="svn"), "'svn' is not one of"),
        (lambda c: c["benchmark"]["groups"]["batch"].update(ubatch_size=[0]), "benchmark.groups.batch.ubatch_size[0]"),
        (lambda c: c["benchmark"]["groups"]["batch"].update(n_depth=[0.5]), "n_depth"),
        (lambda c: c["models"]["gemma3-270m"].pop("kind"), "'kind' is a required property"),
        (lambda c: c["benchmark"]["defaults"].update(n_gpu_layers="150%"), "benchmark.defaults.n_gpu_layers"),
        (lambda c: c["benchmark"]["defaults"].update(load_mode="fast"), "benchmark.defaults.load_mode"),
        (lambda c: c["benchmark"]["defaults"].update(device="Vulkan 0"), "benchmark.defaults.device"),
        (lambda c: c["rpc"].update(cells=[{"device": "Vulkan0"}]), "rpc.cells[0].device: an RPC cell runs on its"),
    ],
)
def test_bad_config_names_the_key(mutate, named: str) -> None:
    config = copy.deepcopy(SHIPPED_CONFIG)
    mutate(config)
    with pytest.raises(ConfigError) as err:
        resolved(config)
    assert named in str(err.value)


@pytest.mark.parametrize("name", ["", "failure"])
def test_test_configs_are_valid(name: str) -> None:
    resolved(load_test_config(name))


def test_bare_on_off_from_yaml_are_accepted() -> None:
    config = copy.deepcopy(SHIPPED_CONFIG)
    config["benchmark"]["groups"]["fa"] = {"flash_attn": [True, False]}  # what `flash_attn: [on, off]` parses to
    cells = plan.make(resolved(config)).bench.values()
    assert {c.params["flash_attn"] for c in cells} == {"on", "off", "auto"}


def test_bad_config_fails_before_any_job(tmp_path: Path) -> None:
    """A typo in config.yaml stops snakemake itself, naming the key, and nothing is created."""
    config = copy.deepcopy(SHIPPED_CONFIG)
    config["benchmark"]["defaults"]["ubatch"] = 128
    write_config(tmp_path, config)
    out = snakemake(tmp_path, "--cores", "1", check=False)
    assert out.returncode != 0
    assert "'ubatch' was unexpected" in out.stdout + out.stderr
    assert not (tmp_path / "results").exists()


def test_a_default_that_names_a_missing_build_says_so(tmp_path: Path) -> None:
    """benchmark.builds and serving.builds default to [cpu]: a config without that build is told which key to set."""
    write_config(tmp_path, {"builds": {"mine": {"cmake_options": []}}})
    out = snakemake(tmp_path, "-n", check=False)
    assert out.returncode != 0
    assert "benchmark.builds names 'cpu' (its default), which is not under builds:" in out.stdout + out.stderr
    assert not (tmp_path / "results").exists()


TWO_SOURCES = {"a": {"kind": "pypi-sdist", "package": "llama-cpp-python", "version": "0.3.14"},
               "b": {"kind": "pypi-sdist", "package": "llama-cpp-python", "version": "0.3.36"}}


@pytest.mark.parametrize(
    "config, message",
    [
        ({"source": {"kind": "path", "path": "/opt/llama.cpp"}}, "source: is now sources:"),
        ({"sources": TWO_SOURCES}, "builds.cpu.source is needed: there are several sources (a, b)"),
        ({"sources": TWO_SOURCES, "builds": {"cpu": {"source": "c"}}}, "builds.cpu.source names 'c'"),
        ({"sources": TWO_SOURCES,
          "builds": {"cpu": {"source": "a"}, "cpu-rpc": {"source": "b", "cmake_options": ["-DGGML_RPC=ON"]},
                     "old-rpc": {"source": "a", "cmake_options": ["-DGGML_RPC=ON"]}},
          "rpc": {"topologies": {"mixed": {"client": "cpu-rpc",
                                           "workers": [{"kind": "local", "build": "old-rpc"}]}}}},
         "rpc.topologies.mixed.workers[0].build names build 'old-rpc' of source 'a'"),
        ({"comparisons": {"up": {"baseline": "gpu@0000000", "builds": ["cpu"]}}},
         "comparisons.up names 'gpu@0000000', which is not under builds (nor a version in results/history)"),
    ],
)
def test_sources_and_comparisons_are_checked_before_any_job(tmp_path: Path, config: dict, message: str) -> None:
    write_config(tmp_path, config)
    out = snakemake(tmp_path, "-n", check=False)
    assert out.returncode != 0 and message in out.stdout + out.stderr, out.stderr[-2000:]
    assert not (tmp_path / "results").exists()


def test_a_comparison_may_name_a_version_this_run_will_keep(tmp_path: Path) -> None:
    """cpu@<commit> of a current build is a version its source change will keep: a warning, not an error."""
    write_config(tmp_path, {"comparisons": {"up": {"baseline": "cpu@0000000", "builds": ["cpu"]}}})
    out = snakemake(tmp_path, "-n")
    assert "comparisons.up: cpu@0000000 is not in results/history yet" in out.stdout + out.stderr


def schema_keys() -> set[str]:
    """Every key of the config schema as a dotted path (``<name>`` for a named entry, ``[]`` for a list item),
    following its references into the generated axes schema."""
    docs = {p.name: yaml.safe_load(p.read_text()) for p in configuration.SCHEMA_DIR.glob("*.schema.yaml")}

    def deref(node: Any, doc: dict) -> tuple[Any, dict]:
        while isinstance(node, dict) and "$ref" in node:
            file, _, fragment = node["$ref"].partition("#")
            doc = docs[file] if file else doc
            target = doc
            for part in fragment.strip("/").split("/"):
                target = target[part]
            node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return node, doc

    found: set[str] = set()

    def walk(node: Any, doc: dict, prefix: str) -> None:
        node, doc = deref(node, doc)
        if not isinstance(node, dict):
            return
        for key, sub in (node.get("properties") or {}).items():
            found.add(f"{prefix}.{key}" if prefix else key)
            walk(sub, doc, f"{prefix}.{key}" if prefix else key)
        branches = [c.get("then", {}) for c in node.get("allOf", [])] + node.get("anyOf", []) + node.get("oneOf", [])
        for branch in branches:
            walk(branch, doc, prefix)
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], doc, f"{prefix}.<name>")
        if isinstance(node.get("items"), dict):
            walk(node["items"], doc, f"{prefix}[]")

    walk(docs["config.schema.yaml"], docs["config.schema.yaml"], "")
    return found


def test_every_key_of_the_schema_is_documented_in_the_config_reference() -> None:
    """config/README.md names each key; an axis inside defaults, a group, a scenario or a partial assignment is
    documented once, in its Axes table, and the place that holds it by its own name."""
    from llamabench.core import axes

    text = (configuration.SCHEMA_DIR.parents[1] / "config" / "README.md").read_text()
    keys = schema_keys()
    assert len(keys) > 150 and "rpc.topologies.<name>.workers[].threads" in keys
    missing = []
    for key in sorted(keys):
        holder, _, last = key.rpartition(".")
        if holder.startswith("tune.<name>.space.") and holder.split(".")[-1] in axes.AXES:
            key = f"tune.<name>.space.<axis>.{last}"  # a range, the same for every axis
        elif last in axes.AXES and holder.split(".")[-1] in ("defaults", "<name>", "exclude[]", "include[]", "cells[]",
                                                              "space", "workload", "settings") \
                and not holder.startswith(("rpc.topologies", "models", "builds")):
            if f"| `{last}`" not in text and f"`{last}`, " not in text and f", `{last}`" not in text:
                missing.append(f"the axis {last}")
            continue
        if f"`{key}`" not in text:
            missing.append(key)
    assert not missing, missing


def test_the_reference_names_the_axes_a_study_takes_as_the_registry_does() -> None:
    """config/README.md's tune.<name>.space and workload rows list axes by name: exactly the registry's tunable
    settings and workload axes (``Axis.tunable``), so making an axis tunable cannot leave them stale."""
    from llamabench.core import axes

    text = (configuration.SCHEMA_DIR.parents[1] / "config" / "README.md").read_text()
    tunable = [a for a in axes.AXES.values() if a.tunable and a.sweep]
    for row, role in [("tune.<name>.space", axes.SETTING), ("tune.<name>.workload", axes.WORKLOAD)]:
        [line] = [line for line in text.splitlines() if line.startswith(f"| `{row}` |")]
        named = {name for name in re.findall(r"`(\w+)`", line) if name in axes.AXES}
        assert named == {a.name for a in tunable if a.role == role}, row


def test_config_yaml_shows_every_default_of_the_sections_it_shows() -> None:
    """config.yaml is the schema's defaults written out: every key the schema fills in, outside named entries,
    is there (so a user sees the default of every axis, the load mode included)."""
    def leaves(tree: Any, prefix: tuple = ()) -> set[tuple]:
        if not isinstance(tree, dict) or prefix[:1] in {(k,) for k in ("sources", "platforms", "builds", "models")} \
                or prefix[-1:] in (("groups",), ("scenarios",), ("topologies",), ("tune",)):
            return {prefix}
        return {path for key, value in tree.items() for path in leaves(value, (*prefix, key))}

    assert leaves(resolved({})) == leaves(resolved(SHIPPED_CONFIG)) == leaves(copy.deepcopy(SHIPPED_CONFIG))


GIT = {"kind": "git", "url": "https://github.com/ggml-org/llama.cpp", "ref": "b6000"}


@pytest.mark.parametrize(
    ("studies", "named"),
    [
        ({"bisect": {"b": {"source": "main", "good": "a", "bad": "b"}}},
         "bisect.b.source names 'main', a pypi-sdist source: a study of llama.cpp's history needs a git source"),
        ({"bisect": {"b": {"source": "up", "good": "a"}}}, "bisect.b: good and bad are needed"),
        ({"bisect": {"b": {"source": "up", "good": "a", "bad": "b", "history": "h"}}}, "bisect.b.history names 'h'"),
        ({"bisect": {"b": {"source": "up", "good": "a", "bad": "b", "build": "gpu"}}}, "bisect.b.build names 'gpu'"),
        ({"bisect": {"b": {"source": "up", "good": "a", "bad": "b", "comparison": "x"}}},
         "bisect.b.comparison names 'x'"),
        ({"bisect": {"b": {"source": "up", "good": "a", "bad": "b", "rounds": 4, "max_rounds": 3}}},
         "bisect.b.max_rounds (3) is below bisect.b.rounds (4)"),
        ({"bisect": {"b": {"source": "up", "good": "a", "bad": "b", "cells": [{"n_gen": 0}]}}},
         "bisect.b.cells: metric tg needs the tg test, and n_gen is 0"),
        ({"history": {"h": {"source": "up", "from": "a"}}}, "history.h: from and to are needed"),
        ({"history": {"h": {"source": "up", "from": "a", "to": "b", "refs": ["c"]}}},
         "history.h: give from and to, or refs, not both"),
        ({"history": {"h": {"source": "up", "refs": ["a"], "every": 0}}}, "history.h.every"),
        ({"bisect": {"b": {"source": "up", "good": "a", "bad": "b", "metric": "ttft"}}}, "bisect.b.metric"),
    ],
)
def test_bad_commit_study_names_the_key(studies: dict, named: str) -> None:
    config = copy.deepcopy(SHIPPED_CONFIG)
    config["sources"]["up"] = GIT
    for build in config["builds"].values():
        build["source"] = "main"
    config.update(studies)
    with pytest.raises(ConfigError) as err:
        resolved(config)
    assert named in str(err.value)


def test_commit_studies_plan_their_cells() -> None:
    config = copy.deepcopy(SHIPPED_CONFIG)
    config["sources"]["up"] = GIT
    for build in config["builds"].values():
        build["source"] = "main"
    config["bisect"] = {"b": {"source": "up", "good": "a", "bad": "b", "cells": [{"n_prompt": 0, "n_gen": 16}]}}
    config["history"] = {"h": {"source": "up", "from": "a", "to": "b"}}
    the_plan = plan.make(resolved(config))
    found = the_plan.bisects["b"]
    assert found.build == "cpu" and found.models == ("gemma3-270m",) and found.url == GIT["url"]
    [cell_id] = found.cells
    assert found.cells[cell_id]["n_gen"] == 16 and the_plan.histories["h"].cells  # history: the defaults cell
    commit = "0" * 40
    cells = the_plan.commit_cells("bisect", "b", [commit], [cell_id], range(1, 3), probe=1)
    assert [c.path for c in cells] == [
        f"results/bisect/b/cells/probe-1/{commit}/gemma3-270m/{cell_id}.json",
        f"results/bisect/b/cells/probe-1/{commit}/gemma3-270m/{cell_id}_round-2.json"]
    assert cells[0].priority > cells[1].priority  # round 1 of a measurement before its round 2


@pytest.mark.parametrize(("change", "message"), [
    ({"benchmark": {"groups": {"rows": {"builds": ["vk"], "split_mode": ["layer", "row"]}}}},
     "benchmark.groups.rows: split_mode row needs a backend with split buffers (sycl); build 'vk' is vulkan"),
    ({"serving": {"builds": ["vk"], "scenarios": {"split": {"split_mode": ["tensor"], "flash_attn": ["auto"]}}}},
     "serving.scenarios.split: split_mode tensor needs flash_attn on"),
    ({"benchmark": {"groups": {"dev": {"builds": ["vk"], "device": ["CUDA0"]}}}},
     "benchmark.groups.dev: device CUDA0: build 'vk' is vulkan, whose devices are Vulkan0, Vulkan1, ..., not CUDA0"),
    ({"benchmark": {"groups": {"dev": {"builds": ["cpu"], "device": ["Vulkan0"]}}}},
     "benchmark.groups.dev: device Vulkan0 names a GPU, and build 'cpu' is a CPU build"),
])
def test_a_split_llama_cpp_would_refuse_is_a_config_error_naming_where(change: dict, message: str) -> None:
    builds = {**DEFAULT_CONFIG["builds"], "vk": {"cmake_options": ["-DGGML_VULKAN=ON"]}}
    config = {**copy.deepcopy(DEFAULT_CONFIG), "builds": builds,
              "benchmark": {**DEFAULT_CONFIG["benchmark"], "groups": {}},
              "serving": {**DEFAULT_CONFIG["serving"], "scenarios": {}}}
    for section, value in change.items():
        config[section] = {**config[section], **value}
    with pytest.raises(ConfigError, match=re.escape(message)):
        configuration.resolve(config)
    sycl = {**config, "builds": {**builds, "vk": {"cmake_options": ["-DGGML_SYCL=ON"]}}}
    if "row" in message:
        configuration.resolve(sycl)  # SYCL has split buffers
