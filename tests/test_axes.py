"""The axis registry (core/axes.py): one definition of every axis, from which the config schema's axis blocks,
the tables' axis columns, the export and every tree's spelling derive. Spellings are checked against the
recorded ``--help`` of both trees the tests build (tests/data/README.md)."""

from __future__ import annotations

import pytest
import yaml

from conftest import DEFAULT_CONFIG, ROOT
from llamabench import export, report_html
from llamabench.core import axes, configuration, matrix, records
from llamabench.core.configuration import ConfigError
from llamabench.core.errors import Unsupported

HELP = ROOT / "tests" / "data" / "help"
CURRENT, MID_2025 = "0c1e570", "79e0b68"


def help_text(tool: str, tree: str) -> str:
    return (HELP / f"{tool}-{tree}.txt").read_text()


def spelled(axis: str, value: object, tool: str, tree: str) -> list[str]:
    """How one tree's tool says one axis value."""
    return axes.spelling(axis, tool, help_text(tool, tree)).arguments(axis, value, tool)


def command_line(kind: str, tool: str, tree: str, **changes: object) -> list[str]:
    """The flags of the defaults cell of ``kind`` with ``changes``, as one tree's tool takes them."""
    config = configuration.resolve(DEFAULT_CONFIG)
    base = matrix.baseline(config["benchmark"]) if kind == axes.BENCHMARK else config["serving"]["defaults"]
    return axes.arguments(axes.normalize({**base, **changes}, kind), kind, tool, help_text(tool, tree))


def test_the_config_schema_axis_blocks_are_generated_from_the_registry() -> None:
    """workflow/schemas/axes.schema.yaml is what `python -m llamabench.core.axes` writes."""
    assert yaml.safe_load((ROOT / "workflow/schemas/axes.schema.yaml").read_text()) == axes.schema_document()


def test_defaults_and_sweepable_axes_come_from_the_registry() -> None:
    config = configuration.resolve({})
    for kind, section in [(axes.BENCHMARK, "benchmark"), (axes.SERVING, "serving")]:
        swept = [a.name for a in axes.of(kind) if a.sweep and a.default is not None]  # rate, dataset: none
        assert list(config[section]["defaults"]) == sorted(swept)
        assert all(config[section]["defaults"][name] == axes.AXES[name].default for name in swept)


def test_each_kinds_labels_are_unique_and_the_defaults_ids_unchanged() -> None:
    for kind in (axes.BENCHMARK, axes.SERVING):
        labels = [a.label for a in axes.of(kind)]
        assert len(set(labels)) == len(labels)
    config = configuration.resolve(DEFAULT_CONFIG)
    assert matrix.cell_id(matrix.baseline(config["benchmark"])) == \
        "t2_b2048_ub512_ngl99_fa-auto_ctk-f16_ctv-f16_p128_n32_d0_r3"
    serving = matrix.serving_cells(config["serving"])
    assert sorted(serving) == sorted(f"t2_b2048_ub512_ngl99_fa-auto_c4096_np2_pt{p}_mt16_cc{c}_rq6_cache-cold"
                                     for p in (32, 128) for c in (1, 2))


def test_each_axis_is_a_setting_or_describes_the_work() -> None:
    """A user chooses settings; the work (lengths, depth, load, arrivals, the prompts) is described, never compared
    with the defaults: a shorter prompt is no improvement. A serving cell's llama-bench partner shares settings only."""
    assert {a.role for a in axes.AXES.values()} == {axes.SETTING, axes.WORKLOAD}
    assert axes.workload(axes.BENCHMARK) == ("n_prompt", "n_gen", "n_depth")
    assert axes.workload(axes.SERVING) == ("prompt_tokens", "max_tokens", "concurrency", "requests", "cache", "arrival",
                                          "rate", "burstiness", "length_spread", "dataset", "turns", "prefix_tokens",
                                          "prefix_scope", "think_ms", "think", "trace")
    assert all(axes.AXES[name].role == axes.SETTING for name in (*axes.SERVER_SHARED, "parallel", "ctx_size",
                                                                 "cont_batching", "prompt_cache", "cache_reuse",
                                                                 "swa_full", "kv_unified", "cache_ram"))
    base = {"prompt_tokens": 128, "concurrency": 1}
    assert axes.same_workload({**base, "parallel": 1}, {**base, "parallel": 2}, axes.SERVING)
    assert not axes.same_workload({**base, "prompt_tokens": 32}, base, axes.SERVING)
    assert axes.same_workload({**base, "rate": None}, base, axes.SERVING)  # an optional axis at its default


@pytest.mark.parametrize(("kind", "row"), [(axes.BENCHMARK, "summary_row"), (axes.BENCHMARK, "stats_row"),
                                           (axes.SERVING, "serving_row")])
def test_table_columns_hold_every_axis_in_id_order(kind: str, row: str) -> None:
    columns = records.columns(row)
    positions = [columns.index(name) for name in axes.names(kind)]
    assert positions == sorted(positions) and positions[-1] - positions[0] == len(positions) - 1


def test_the_report_and_export_take_their_axes_from_the_registry() -> None:
    assert set(axes.names(axes.SERVING)) <= set(report_html.SERVING_COLUMNS)
    assert {"load_mode", "no_op_offload", "threads"} <= set(report_html.SUMMARY_COLUMNS)
    fields = {a.json_field for a in axes.of(axes.BENCHMARK) if a.json_field}
    assert fields <= set(export.FIELDS) and "load_mode" in fields


@pytest.mark.parametrize(("tree", "mode", "expected"), [
    (CURRENT, "none", ["-lm", "none"]), (CURRENT, "mlock", ["-lm", "mlock"]), (CURRENT, "dio", ["-lm", "dio"]),
    (MID_2025, "mmap", ["-mmp", "1"]), (MID_2025, "none", ["-mmp", "0"]),
])
def test_llama_bench_load_mode_spelled_per_tree(tree: str, mode: str, expected: list[str]) -> None:
    assert spelled("load_mode", mode, axes.LLAMA_BENCH, tree) == expected
    args = command_line(axes.BENCHMARK, axes.LLAMA_BENCH, tree, load_mode=mode, flash_attn="on")
    assert args[args.index(expected[0]):args.index(expected[0]) + 2] == expected


@pytest.mark.parametrize("mode", ["mlock", "mmap+mlock", "dio"])
def test_a_load_mode_a_mid_2025_llama_bench_cannot_say_is_unsupported_with_why(mode: str) -> None:
    with pytest.raises(Unsupported, match="-mmp 0.1 only"):
        command_line(axes.BENCHMARK, axes.LLAMA_BENCH, MID_2025, load_mode=mode, flash_attn="on")


@pytest.mark.parametrize(("tree", "mode", "expected"), [
    (CURRENT, "mmap+mlock", ["-lm", "mmap+mlock"]), (MID_2025, "none", ["--no-mmap"]),
    (MID_2025, "mlock", ["--no-mmap", "--mlock"]), (MID_2025, "mmap+mlock", ["--mlock"]), (MID_2025, "mmap", []),
])
def test_llama_server_load_mode_spelled_per_tree(tree: str, mode: str, expected: list[str]) -> None:
    assert spelled("load_mode", mode, axes.LLAMA_SERVER, tree) == expected


def test_auto_is_not_passed_on_any_tree_so_no_cell_changed() -> None:
    for tree in (CURRENT, MID_2025):
        for tool, kind in [("llama-bench", axes.BENCHMARK), ("llama-server", axes.SERVING)]:
            plain = command_line(kind, tool, tree, flash_attn="on")
            assert command_line(kind, tool, tree, flash_attn="on", load_mode="auto") == plain
            assert not {"-lm", "-mmp", "--no-mmap", "--mlock"} & set(plain)


def test_flash_attention_spelled_per_tree() -> None:
    assert spelled("flash_attn", "auto", axes.LLAMA_BENCH, CURRENT) == ["-fa", "auto"]
    assert spelled("flash_attn", "on", axes.LLAMA_BENCH, MID_2025) == ["-fa", "1"]
    with pytest.raises(Unsupported, match="-fa 0/1 only"):
        command_line(axes.BENCHMARK, axes.LLAMA_BENCH, MID_2025)
    assert spelled("flash_attn", "on", axes.LLAMA_SERVER, CURRENT) == ["-fa", "on"]
    assert spelled("flash_attn", "on", axes.LLAMA_SERVER, MID_2025) == ["-fa"]
    assert spelled("flash_attn", 0, axes.LLAMA_SERVER, MID_2025) == []
    with pytest.raises(Unsupported, match="switch"):
        command_line(axes.SERVING, axes.LLAMA_SERVER, MID_2025)


def test_a_tool_without_the_flag_at_all_is_unsupported() -> None:
    with pytest.raises(Unsupported, match="has no -lm/-mmp"):
        axes.spelling("load_mode", axes.LLAMA_BENCH, "usage: llama-bench [options]\n")


def test_every_axis_a_tool_takes_is_on_the_command_line_in_id_order() -> None:
    flags = command_line(axes.BENCHMARK, axes.LLAMA_BENCH, CURRENT, load_mode="none")[::2]
    assert flags == ["-t", "-b", "-ub", "-ngl", "-lm", "-fa", "-ctk", "-ctv", "-p", "-n", "-d", "-r"]


def test_a_studys_space_and_a_sweeps_settings_take_what_the_registry_says() -> None:
    """Making an axis tunable is its registry flag (``Axis.tunable``): the generated schema's tuning and load
    blocks follow it, and the config check names the key of an axis a study or sweep cannot take."""
    defs = axes.schema_defs()
    settings = {a.name for a in axes.AXES.values() if a.tunable and a.sweep and a.role == axes.SETTING}
    assert set(defs["tune_space"]["properties"]) == set(defs["tune_candidate"]["properties"]) == settings
    assert {"threads", "n_gpu_layers", "no_op_offload", "parallel"} <= settings
    assert set(defs["tune_workload"]["properties"]) >= {"n_gen", "prompt_tokens"}
    assert not set(defs["load_settings"]["properties"]) & set(axes.SWEEP_OWN)
    configuration.resolve({"tune": {"s": {"space": {"threads": [1, 2]}, "workload": {"n_gen": 8}}}})
    for bad, key in [({"tune": {"s": {"space": {"cont_batching": ["on", "off"]}}}}, "cont_batching"),
                     ({"tune": {"s": {"workload": {"rate": 2}}}}, "rate"),
                     ({"load": {"s": {"settings": {"requests": 3}}}}, "requests"),
                     ({"load": {"s": {"settings": {"arrival": "closed"}}}}, "arrival")]:
        with pytest.raises(ConfigError, match=key):
            configuration.resolve(bad)


def test_a_split_over_several_gpus_is_spelled_per_tool_and_tree() -> None:
    """-sm, -mg and -ts on the recorded --help of both trees: llama-bench takes the tensor split with "/", the
    server with ","; the mid-2025 trees have no -sm tensor; at their defaults none is passed (no cell changed)."""
    args = command_line(axes.BENCHMARK, axes.LLAMA_BENCH, CURRENT, split_mode="row", main_gpu=1, tensor_split="3/1")
    assert args[args.index("-sm"):args.index("-sm") + 6] == ["-sm", "row", "-mg", "1", "-ts", "3/1"]
    assert spelled("tensor_split", "3/1", axes.LLAMA_SERVER, CURRENT) == ["-ts", "3,1"]
    assert spelled("split_mode", "tensor", axes.LLAMA_SERVER, CURRENT) == ["-sm", "tensor"]
    assert spelled("split_mode", "none", axes.LLAMA_BENCH, MID_2025) == ["-sm", "none"]
    with pytest.raises(Unsupported, match="no -sm tensor"):
        spelled("split_mode", "tensor", axes.LLAMA_BENCH, MID_2025)
    plain = command_line(axes.BENCHMARK, axes.LLAMA_BENCH, CURRENT)
    assert command_line(axes.BENCHMARK, axes.LLAMA_BENCH, CURRENT, split_mode="layer", main_gpu=0) == plain
    assert not {"-sm", "-mg", "-ts"} & set(plain)
    assert matrix.cell_id(axes.normalize({**matrix.baseline(configuration.resolve(DEFAULT_CONFIG)["benchmark"]),
                                          "tensor_split": "3/1"}, axes.BENCHMARK)).count("_ts-3-1_") == 1
