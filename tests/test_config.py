"""The config schema: defaults filled, unknown keys and wrong types rejected with the key named."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from conftest import DEFAULT_CONFIG, ROOT, load_test_config, snakemake, write_config
from llamabench import matrix

SCHEMA = str(ROOT / "workflow" / "schemas" / "config.schema.yaml")


def test_default_config_is_valid_and_gets_defaults() -> None:
    config = copy.deepcopy(DEFAULT_CONFIG)
    validate(config, SCHEMA)
    assert config["benchmark"]["timeout"] == 1800
    assert config["smoke"]["timeout"] == 600


def validated(config: dict) -> dict:
    config = copy.deepcopy(config)
    validate(config, SCHEMA)
    return config


def key_paths(tree: dict, prefix: tuple = ()) -> list[tuple]:
    """Every key of config.yaml, at every depth."""
    paths = []
    for key, value in tree.items():
        paths.append((*prefix, key))
        if isinstance(value, dict):
            paths += key_paths(value, (*prefix, key))
    return paths


def without(config: dict, path: tuple) -> dict:
    reduced = copy.deepcopy(config)
    parent = reduced
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return reduced


def cell_ids(config: dict) -> set:
    """Benchmark cells (with serving partners), serving cells and RPC cells."""
    cells, serving = matrix.all_cells(config)
    return set(cells) | {("serving", *key) for key in serving} | {("rpc", *key) for key in matrix.expand_rpc(config)}


def test_an_empty_config_is_the_default_config() -> None:
    """The schema is the one source of defaults: config.yaml shows exactly its values."""
    assert validated({}) == validated(DEFAULT_CONFIG)


@pytest.mark.parametrize("path", key_paths(DEFAULT_CONFIG), ids=lambda p: ".".join(p))
def test_removing_any_key_leaves_every_cell_id_unchanged(path: tuple) -> None:
    """Deleting a line of config.yaml falls back to the schema's default: the same config, the same cells.

    Entries of a named map (a build, a model, a group) and the keys inside them are
    content, not defaults: removing one drops that entry's cells or is rejected naming
    the key, but never renames a remaining cell.
    """
    full = validated(DEFAULT_CONFIG)
    try:
        reduced = validated(without(DEFAULT_CONFIG, path))
    except WorkflowError as err:
        assert path[-1] in str(err)
        return
    if any(path[:i] in NAMED_MAPS for i in range(1, len(path))):
        assert cell_ids(reduced) <= cell_ids(full)
    else:
        assert reduced == full


NAMED_MAPS = {("platforms",), ("sources",), ("builds",), ("models",), ("benchmark", "groups"), ("serving", "scenarios"),
              ("rpc", "topologies")}


def test_a_schema_default_that_differs_from_config_yaml_is_caught() -> None:
    """The check above can fail: a config that differs from a default is not the default config."""
    changed = copy.deepcopy(DEFAULT_CONFIG)
    changed["benchmark"]["repetitions"] = 5
    assert validated(changed) != validated({})
    assert cell_ids(validated(changed)) != cell_ids(validated({}))


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (lambda c: c["benchmark"].update(treads=[1]), "treads"),
        (lambda c: c["benchmark"]["defaults"].update(threads="two"), "threads"),
        (lambda c: c["models"]["gemma3-270m"].update(revison="main"), "revison"),
        (lambda c: c["builds"]["cpu"].update(cmake_options="-DGGML_RPC=ON"), "cmake_options"),
        (lambda c: c["sources"]["main"].update(kind="svn"), "'svn' is not one of"),
        (lambda c: c["benchmark"]["groups"]["batch"].update(ubatch_size=[0]), "ubatch_size"),
        (lambda c: c["benchmark"]["groups"]["batch"].update(n_depth=[0.5]), "n_depth"),
        (lambda c: c["models"]["gemma3-270m"].pop("kind"), "'kind' is a required property"),
    ],
)
def test_bad_config_names_the_key(mutate, named: str) -> None:
    config = copy.deepcopy(DEFAULT_CONFIG)
    mutate(config)
    with pytest.raises(WorkflowError) as err:
        validate(config, SCHEMA)
    assert named in str(err.value)


@pytest.mark.parametrize("name", ["", "failure"])
def test_test_configs_are_valid(name: str) -> None:
    validated(load_test_config(name))


def test_bare_on_off_from_yaml_are_accepted() -> None:
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["benchmark"]["groups"]["fa"] = {"flash_attn": [True, False]}  # what `flash_attn: [on, off]` parses to
    validate(config, SCHEMA)


def test_bad_config_fails_before_any_job(tmp_path: Path) -> None:
    """A typo in config.yaml stops snakemake itself, naming the key, and nothing is created."""
    config = copy.deepcopy(DEFAULT_CONFIG)
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
