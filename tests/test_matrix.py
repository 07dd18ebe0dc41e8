"""The matrix (core/matrix.py): stable readable ids, groups, exclude/include, the defaults cell, placement."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from conftest import DEFAULT_CONFIG
from llamabench.core import axes, configuration, matrix
from llamabench.core.configuration import ConfigError
from llamabench.core.errors import Unsupported
from llamabench.measure import llama_bench


def bench_config(**changes: Any) -> dict[str, Any]:
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["benchmark"].update(changes)
    return configuration.resolve(config)["benchmark"]


def test_cell_id_is_readable_and_built_from_values() -> None:
    base = matrix.baseline(bench_config())
    assert matrix.cell_id(base) == "t2_b2048_ub512_ngl99_fa-auto_ctk-f16_ctv-f16_p128_n32_d0_r3"
    assert matrix.cell_id({**base, "cache_type_k": "q4_0"}).count("ctk-q4-0") == 1


def test_default_matrix_shares_the_defaults_cell_between_groups() -> None:
    cells = matrix.bench_cells(bench_config(), "cpu")
    threads = sorted(p["threads"] for p in cells.values())
    assert threads == [1, 2, 2, 2]  # t1, defaults, and two batch cells at the default thread count
    batches = {(p["batch_size"], p["ubatch_size"]) for p in cells.values()}
    assert batches == {(2048, 512), (128, 128), (2048, 128)}  # (128, 512) is excluded in config.yaml


def test_adding_an_axis_value_adds_exactly_the_new_cells() -> None:
    before = matrix.bench_cells(bench_config(), "cpu")
    groups = copy.deepcopy(DEFAULT_CONFIG["benchmark"]["groups"])
    groups["threads"]["threads"].append(4)
    after = matrix.bench_cells(bench_config(groups=groups), "cpu")
    assert set(before) < set(after)
    assert [after[c]["threads"] for c in set(after) - set(before)] == [4]


def test_include_adds_and_exclude_never_drops_the_defaults_cell() -> None:
    base = matrix.baseline(bench_config())
    cells = matrix.bench_cells(
        bench_config(exclude=[{"threads": 2}], include=[{"threads": 1, "batch_size": 64}]), "cpu"
    )
    assert matrix.cell_id(base) in cells
    assert all(p["threads"] == 1 or p == base for p in cells.values())
    assert any(p["batch_size"] == 64 and p["threads"] == 1 for p in cells.values())


def test_group_restricted_to_builds() -> None:
    groups = {"ngl": {"builds": ["cpu-rpc"], "n_gpu_layers": [0, 99]}}
    bench = bench_config(groups=groups)
    assert len(matrix.bench_cells(bench, "cpu")) == 1
    assert {p["n_gpu_layers"] for p in matrix.bench_cells(bench, "cpu-rpc").values()} == {0, 99}


def test_llama_bench_args_are_explicit_for_every_axis() -> None:
    args = llama_bench.arguments(matrix.baseline(bench_config()))
    assert args[args.index("-ub") + 1] == "512"
    assert args[args.index("-fa") + 1] == "auto"
    optional = [a for a in axes.of(axes.BENCHMARK) if a.optional]
    assert len(args) == 2 * (len(axes.names(axes.BENCHMARK)) - len(optional))  # an optional axis only when set


def test_yaml_booleans_become_on_off_and_key_order_does_not_matter() -> None:
    bench = bench_config(groups={"fa": {"flash_attn": [True, False]}})
    cells = matrix.bench_cells(bench, "cpu")
    assert {p["flash_attn"] for p in cells.values()} == {"on", "off", "auto"}
    reordered = dict(reversed(list(bench["defaults"].items())))
    again = matrix.bench_cells({**bench, "defaults": reordered}, "cpu")
    assert [repr(p) for p in again.values()] == [repr(p) for p in cells.values()]


def test_bare_on_in_exclude_matches_bare_on_elsewhere() -> None:
    """`flash_attn: on` unquoted is True in YAML, in defaults, groups and exclude alike."""
    defaults = {**DEFAULT_CONFIG["benchmark"]["defaults"], "flash_attn": True}
    bench = bench_config(defaults=defaults, groups={"t": {"threads": [1, 2]}},
                         exclude=[{"threads": 1, "flash_attn": True}])
    assert [p["threads"] for p in matrix.bench_cells(bench, "cpu").values()] == [2]


def test_an_optional_axis_at_its_default_renames_no_cell() -> None:
    """Cells measured before ``no_op_offload`` existed keep their ids (and results): it is spelled only when set."""
    base = matrix.baseline(bench_config())
    assert "no_op_offload" not in base and "load_mode" not in base
    assert matrix.cell_id(base) == "t2_b2048_ub512_ngl99_fa-auto_ctk-f16_ctv-f16_p128_n32_d0_r3"
    assert axes.normalize({**base, "no_op_offload": 0, "load_mode": "auto"}, axes.BENCHMARK) == base
    cpu_baseline = axes.normalize({**base, "n_gpu_layers": 0, "no_op_offload": 1}, axes.BENCHMARK)
    assert matrix.cell_id(cpu_baseline) == "t2_b2048_ub512_ngl0_nopo1_fa-auto_ctk-f16_ctv-f16_p128_n32_d0_r3"
    args = llama_bench.arguments(cpu_baseline)
    assert args[args.index("-ngl"):args.index("-ngl") + 4] == ["-ngl", "0", "-nopo", "1"]
    assert "-nopo" not in llama_bench.arguments(base)


def test_no_op_offload_on_a_llama_bench_without_the_flag_is_skipped() -> None:
    cell = axes.normalize({**matrix.baseline(bench_config()), "no_op_offload": 1}, axes.BENCHMARK)
    with pytest.raises(Unsupported, match="-nopo"):
        llama_bench.arguments(cell, "usage: llama-bench [options]\n  -ngl, --n-gpu-layers <n>\n")


def test_all_and_shares_of_the_layers_come_from_the_models_block_count() -> None:
    """Gemma 3 270M has 18 blocks: 19 layers with the output layer; llama.cpp offloads at most that many."""
    base = matrix.baseline(bench_config())
    assert matrix.gpu_layers("all", 18) == 19 and matrix.gpu_layers("50%", 18) == 10
    assert matrix.gpu_layers("0%", 18) == 0 and matrix.gpu_layers(7, 18) == 7
    cell = axes.normalize({**base, "n_gpu_layers": "all"}, axes.BENCHMARK)
    assert matrix.cell_id(cell).startswith("t2_b2048_ub512_ngl-all_fa")
    assert matrix.cell_id({**cell, "n_gpu_layers": "25%"}).startswith("t2_b2048_ub512_ngl-25pct_fa")
    assert matrix.for_model(cell, 18)["n_gpu_layers"] == 19 and matrix.for_model(base, None) == base
    with pytest.raises(Unsupported, match="block count"):
        matrix.for_model(cell, None)
    gpu = matrix.placement(cell, 18, offload=True)
    assert gpu == {"requested": "all", "n_gpu_layers": 19, "model_layers": 18, "offloaded_layers": 19,
                   "cpu_layers": 0, "op_offload": True}
    assert matrix.placement(base, 18, offload=True)["offloaded_layers"] == 19  # 99 is more than there are
    assert matrix.placement({**base, "n_gpu_layers": 5}, 18, offload=True)["cpu_layers"] == 14
    cpu = matrix.placement({**base, "n_gpu_layers": 0, "no_op_offload": 1}, 18, offload=True)
    assert cpu["offloaded_layers"] == 0 and cpu["op_offload"] is False  # the true CPU baseline of a GPU build
    assert matrix.placement(cell, 18, offload=False)["offloaded_layers"] == 0  # no GPU: nothing is offloaded


def test_the_schema_takes_all_shares_and_counts_and_refuses_the_rest() -> None:
    for value in ("all", "50%", "12.5%", "100%", 0, 99, -1):
        bench_config(groups={"gpu": {"n_gpu_layers": [value]}})
    for value in ("most", "50", -2, "%", "150%", "100.5%"):
        with pytest.raises(ConfigError, match=r"benchmark\.groups\.gpu\.n_gpu_layers\[0\]"):
            bench_config(groups={"gpu": {"n_gpu_layers": [value]}})


def test_round_order_is_a_shuffle_seeded_by_round() -> None:
    """Every round shuffles anew (drift spreads over all cells), the same seed the same way (a rerun agrees)."""
    cells = [("cpu", "m", f"c{i}") for i in range(8)]
    first, second = matrix.round_order(cells, 1, 0), matrix.round_order(cells, 2, 0)
    assert sorted(first) == sorted(cells) and first != second
    assert matrix.round_order(list(reversed(cells)), 1, 0) == first
    assert matrix.round_order(cells, 1, 1) != first
