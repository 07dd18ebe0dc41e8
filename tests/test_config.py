"""The config schema: defaults filled, unknown keys and wrong types rejected with the key named."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from conftest import DEFAULT_CONFIG, ROOT, snakemake, write_config

SCHEMA = str(ROOT / "workflow" / "schemas" / "config.schema.yaml")


def test_default_config_is_valid_and_gets_defaults() -> None:
    config = copy.deepcopy(DEFAULT_CONFIG)
    validate(config, SCHEMA)
    assert config["benchmark"]["timeout"] == 1800
    assert config["smoke"]["timeout"] == 600


def test_minimal_config_gets_every_default() -> None:
    config = {"models": {"m": {"kind": "path", "path": "/x.gguf"}}}
    validate(config, SCHEMA)
    assert config["source"] == {"kind": "pypi-sdist", "package": "llama-cpp-python", "version": "0.3.36"}
    assert config["builds"] == {"cpu": {"cmake_options": []}}
    assert config["benchmark"]["defaults"]["batch_size"] == 2048
    assert config["benchmark"]["repetitions"] == 5


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (lambda c: c["benchmark"].update(treads=[1]), "treads"),
        (lambda c: c["benchmark"]["defaults"].update(threads="two"), "threads"),
        (lambda c: c["models"]["gemma3-270m"].update(revison="main"), "revison"),
        (lambda c: c["builds"]["cpu"].update(cmake_options="-DGGML_RPC=ON"), "cmake_options"),
        (lambda c: c["source"].update(kind="svn"), "'svn' is not one of"),
        (lambda c: c["benchmark"]["groups"]["batch"].update(ubatch_size=[0]), "ubatch_size"),
        (lambda c: c["benchmark"]["groups"]["batch"].update(n_depth=[0.5]), "n_depth"),
        (lambda c: c.pop("models"), "'models' is a required property"),
    ],
)
def test_bad_config_names_the_key(mutate, named: str) -> None:
    config = copy.deepcopy(DEFAULT_CONFIG)
    mutate(config)
    with pytest.raises(WorkflowError) as err:
        validate(config, SCHEMA)
    assert named in str(err.value)


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
