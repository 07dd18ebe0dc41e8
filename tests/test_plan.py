"""The plan (core/plan.py): every job of a run from the validated config, computed once, immutable, and the
only source of cells, partners, rounds and paths - for the Snakefile and for a job reading its bookkeeping."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from conftest import DEFAULT_CONFIG, load_test_config
from llamabench.core import axes, configuration, layout, matrix, plan
from llamabench.measure import processes


def make(config: dict[str, Any] | None = None, **bench: Any) -> plan.Plan:
    config = copy.deepcopy(config or DEFAULT_CONFIG)
    config["benchmark"].update(bench)
    return plan.make(configuration.resolve(config))


def test_the_default_plan() -> None:
    """Four matrix cells and two serving partners, four serving cells (the serving defaults among them) and three
    RPC cells, three rounds each; a fourth round planned for cells a disturbance makes measure again."""
    the_plan = make()
    assert len(the_plan.planned("bench_cell")) == 6 * 3 and len(the_plan.planned("serve_cell")) == 4 * 3
    assert len(the_plan.planned("rpc_cell")) == 3 * 3 and list(the_plan.builds) == ["cpu", "cpu-rpc"]
    assert the_plan.last_round == 4 and the_plan.remeasure
    assert the_plan.serving_defaults_cell in {c.base for c in the_plan.planned("serve_cell")}
    assert the_plan.defaults_cell == "t2_b2048_ub512_ngl99_fa-auto_ctk-f16_ctv-f16_p128_n32_d0_r3"
    assert the_plan.rpc_smokes == [("two-cpu", "gemma3-270m")]


def test_it_is_immutable_and_the_same_every_time() -> None:
    the_plan = make()
    assert make() == the_plan and plan.of(the_plan.config) is plan.of(plan.thaw(the_plan.config))
    with pytest.raises(dataclasses.FrozenInstanceError):
        the_plan.rounds = 5  # type: ignore[misc]
    cell = next(iter(the_plan.bench.values()))
    with pytest.raises(TypeError):
        cell.params["threads"] = 7  # type: ignore[index]


def test_every_round_of_a_cell_and_each_rounds_shuffled_order() -> None:
    the_plan = make()
    by_round: dict[int, list[plan.Cell]] = {}
    for cell in [*the_plan.bench.values(), *the_plan.serving.values(), *the_plan.rpc.values()]:
        by_round.setdefault(cell.round, []).append(cell)
    assert sorted(by_round) == [1, 2, 3, 4]  # the fourth: for a cell a disturbance makes measure again
    for round_, cells in by_round.items():
        assert sorted(c.position for c in cells) == list(range(1, len(cells) + 1))
        assert all(("_round-" in c.id) == (round_ > 1) and c.id.startswith(c.base) for c in cells)
    orders = [[c.base for c in sorted(cells, key=lambda c: c.position)] for _, cells in sorted(by_round.items())]
    assert orders[0] != orders[1]  # each round shuffles anew
    lowest_first = min(c.priority for c in by_round[1])
    assert all(c.priority < lowest_first for c in by_round[2])  # round 2 only after all of round 1


def test_bookkeeping_moves_cells_in_their_order_but_never_changes_what_they_measure() -> None:
    """The seed places cells in their rounds; it is not a param: changing it reruns nothing."""
    first, second = make(), make(seed=1)
    assert {k: c.params for k, c in first.bench.items()} == {k: c.params for k, c in second.bench.items()}
    assert {k: c.position for k, c in first.bench.items()} != {k: c.position for k, c in second.bench.items()}
    assert make(timeout=60).timeouts["bench_cell"] == 60 and make(timeout=60).bench == first.bench


def test_each_cell_and_round_pads_its_processes_environment_by_a_draw_of_its_own() -> None:
    """The same binary under two builds' paths can differ for its stack's alignment alone: every cell's processes
    run with an environment padded by a draw per cell and round (measure/processes.py randomize_setup), so that
    such an offset becomes spread over rounds instead of one difference every round."""
    the_plan = make()
    cells = [*the_plan.bench.values(), *the_plan.serving.values(), *the_plan.rpc.values()]
    pads = {c.path: c.setup_pad(the_plan.seed) for c in cells}
    assert all(0 <= pad < plan.SETUP_PAD_BYTES for pad in pads.values())
    again = make()
    assert pads == {c.path: c.setup_pad(again.seed) for c in [*again.bench.values(), *again.serving.values(),
                                                              *again.rpc.values()]}  # the same plan, the same pads
    assert len(set(pads.values())) > 0.9 * len(pads)  # independent draws: few collide
    rounds_of: dict[str, set[int]] = {}
    for cell in the_plan.bench.values():
        rounds_of.setdefault(cell.base, set()).add(pads[cell.path])
    assert all(len(drawn) == the_plan.last_round for drawn in rounds_of.values())  # anew every round
    processes.randomize_setup(pads[cells[0].path])
    seen = processes.run(["printenv", processes.SETUP_PAD], timeout=10).stdout.rstrip("\n")
    assert seen == "x" * pads[cells[0].path]  # what a measured process inherits


def test_partners_are_planned_cells() -> None:
    the_plan = make()
    for cell in the_plan.serving.values():
        partner = the_plan.bench[cell.partner]
        assert partner.params["n_prompt"] == cell.params["prompt_tokens"]
        assert partner.params["n_gen"] == cell.params["max_tokens"] and partner.round == cell.round
    for cell in the_plan.rpc.values():
        partner = the_plan.rpc[cell.partner]
        assert partner.setup["devices"] == "none" and partner.params == cell.params
        assert partner.setup["link_rate"] == cell.setup["link_rate"]


def test_extra_rounds_are_a_function_of_the_checkpoints_decision() -> None:
    """A chosen cell gets the rounds after the configured ones up to its last round, and so does every cell it is
    compared with (a setting's defaults cell; a serving cell's llama-bench partner, and its serving defaults where it
    is a setting: the default config's serving cells change the work alone), so they pair."""
    the_plan = make(remeasure={"enabled": True, "max_rounds": 5})
    assert the_plan.last_round == 5 and len(the_plan.planned("bench_cell")) == 6 * 3
    base = next(c for c in the_plan.bench.values() if c.round == 1 and c.base != the_plan.defaults_cell
                and c.params["n_prompt"] == 128)
    extra = the_plan.extra_rounds([("bench_cell", base.build, base.model, base.base, 5)])
    assert sorted((c.base == base.base, c.round) for c in extra) == [(False, 4), (False, 5), (True, 4), (True, 5)]
    assert {c.base for c in extra} == {base.base, the_plan.defaults_cell}
    mine = next(c for c in extra if c.base == base.base and c.round == 4)
    assert mine.path == layout.path("bench_cell", build=base.build, model=base.model, cell=f"{base.id}_round-4")
    served = next(c for c in the_plan.serving.values() if c.round == 1 and c.base != the_plan.serving_defaults_cell)
    extra = the_plan.extra_rounds([("serve_cell", served.build, served.model, served.base, 4)])
    assert sorted((c.kind, c.round) for c in extra) == [("bench_cell", 4), ("serve_cell", 4)]
    disturbed = make().extra_rounds([("serve_cell", served.build, served.model, served.base, 4)])
    assert len(disturbed) == 2  # one extra round for a disturbed cell: the default action


def test_a_cell_that_changes_the_work_is_never_compared_with_the_defaults() -> None:
    """The planned comparisons of a config sweeping both settings and the work (the small test config with a prompt
    sweep, and slots crossed with prompt lengths): a cell is compared with its defaults cell exactly where it does the
    same work (core/axes.py, an axis's role); statistics pair by the same rule (tests/test_stats.py)."""
    config = load_test_config()
    config["benchmark"]["groups"]["prompt"] = {"n_prompt": [16, 64]}
    config["serving"]["scenarios"]["slots"] = {"parallel": [1, 2], "prompt_tokens": [8, 16]}
    the_plan = plan.make(configuration.resolve(config))
    defaults = {"bench_cell": the_plan.defaults_cell, "serve_cell": the_plan.serving_defaults_cell}
    firsts = {(c.kind, c.base): c for kind in defaults for c in the_plan.planned(kind) if c.round == 1}
    found = set()
    for (kind, base), cell in firsts.items():
        reference = firsts[(kind, defaults[kind])].params
        setting = axes.same_workload(cell.params, reference, plan.ID_KIND[kind])
        assert ((kind, defaults[kind]) in cell.compared) == setting, (kind, base)
        found.add((kind, setting))
    assert found == {(kind, setting) for kind in defaults for setting in (True, False)}


def test_every_kind_has_rounds_interleaved_in_one_order() -> None:
    """Serving and RPC cells take part in the rounds like benchmark cells, in one shuffled order per round."""
    the_plan = make()
    cells = [*the_plan.planned("bench_cell"), *the_plan.planned("serve_cell"), *the_plan.planned("rpc_cell")]
    for round_ in (1, 2, 3):
        positions = sorted(c.position for c in cells if c.round == round_)
        assert positions == list(range(1, len(positions) + 1))
    first = sorted((c for c in cells if c.round == 1), key=lambda c: c.position)
    assert len({c.kind for c in first[:6]}) > 1  # kinds interleave
    assert all(("_round-" in c.id) == (c.round > 1) for c in cells)
    for cell in the_plan.planned("serve_cell"):
        assert the_plan.bench[cell.partner].round == cell.round  # the estimate of the same round
    for cell in the_plan.planned("rpc_cell"):
        assert the_plan.rpc[cell.partner].round == cell.round


def test_every_cell_path_comes_from_the_layout() -> None:
    the_plan = make(load_test_config())
    for kind, cells in [("bench_cell", the_plan.bench), ("serve_cell", the_plan.serving), ("rpc_cell", the_plan.rpc)]:
        for cell in cells.values():
            assert cell.path == f"results/{layout.CELL_DIRS[kind]}/{cell.build}/{cell.model}/{cell.id}.json"
            assert layout.parse(kind, cell.path) == {"build": cell.build, "model": cell.model, "cell": cell.id}


def test_a_cluster_plans_one_build_instance_per_platform() -> None:
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["platforms"] = {"a": {"kind": "slurm", "partition": "pa", "cpus": 4},
                           "b": {"kind": "slurm", "partition": "pb", "cpus": 8}}
    the_plan = plan.make(configuration.resolve(config))
    assert the_plan.cluster and sorted(the_plan.builds) == ["cpu+a", "cpu+b", "cpu-rpc+a", "cpu-rpc+b"]
    assert {the_plan.builds[b].platform for b in the_plan.builds} == {"a", "b"}
    assert {c.build for c in the_plan.bench.values()} == {"cpu+a", "cpu+b"}
    assert sorted(the_plan.topologies) == ["two-cpu+a", "two-cpu+b"]


def test_the_cell_params_a_rule_gets_are_in_the_registrys_order() -> None:
    """Snakemake compares params by repr: a cell's params keep the axis order they always had."""
    cell = make().bench[("cpu", "gemma3-270m", "t2_b2048_ub512_ngl99_fa-auto_ctk-f16_ctv-f16_p128_n32_d0_r3")]
    assert list(plan.thaw(cell.params)) == ["threads", "batch_size", "ubatch_size", "n_gpu_layers", "flash_attn",
                                           "cache_type_k", "cache_type_v", "n_prompt", "n_gen", "n_depth",
                                           "repetitions"]
    assert matrix.cell_id(cell.params) == cell.id


def test_a_cell_rules_job_finds_its_cell_by_the_rules_name_and_its_wildcards() -> None:
    """Plan.cell_of, the one lookup of a program's rule and its variants (tune_cell, load_cell, ...), inverts every
    cell's path; a tuning study's candidate alone is held to the study's memory limit."""
    config = copy.deepcopy(DEFAULT_CONFIG)
    config.update(sources={"hist": {"kind": "git", "url": "file:///hist", "ref": "good"}},
                  tune={"bench": {"space": {"threads": [1, 2]}, "memory_limit_mib": 1000},
                        "served": {"objective": {"metric": "ttft"}, "space": {"threads": [1, 2]}}},
                  load={"fixed": {"rates": [1.0, 0.5]}},
                  history={"h": {"source": "hist", "from": "good", "to": "bad"}},
                  bisect={"b": {"source": "hist", "build": "cpu", "good": "good", "bad": "bad"}})
    the_plan = plan.make(configuration.resolve(config))
    commit = "0123456789abcdef0123456789abcdef01234567"

    def on_commit(kind: str, study: str, probe: int | None = None) -> list[plan.Cell]:
        return the_plan.commit_cells(kind, study, [commit], [the_plan.defaults_cell], [1, 2], probe)

    tuned = [the_plan.tune_cell(study.name, build, model, candidate) for study in the_plan.studies.values()
             for build in study.builds for model in study.models for candidate in study.by_id]
    found = [*((kind, cell) for kind in plan.KINDS for cell in the_plan.cells(kind).values()),
             *((plan.TUNE_KINDS[cell.kind], cell) for cell in tuned),
             *(("load_cell", cell) for cell in the_plan.load_cells("fixed", "gemma3-270m", [1.0, 0.5])),
             *(("history_cell", cell) for cell in on_commit("history", "h")),
             *(("bisect_cell", cell) for cell in on_commit("bisect", "b", 3))]
    assert {rule for rule, _ in found} == {*plan.KINDS, *plan.TUNE_KINDS.values(), "load_cell", "history_cell",
                                           "bisect_cell"}
    for rule, cell in found:
        assert the_plan.cell_of(rule, layout.parse(rule, cell.path)) == cell, (rule, cell.path)
        limited = cell.study == "bench"
        assert (the_plan.memory_settings(cell)["limit_mib"] == 1000) == limited, cell.path
        assert limited or the_plan.memory_settings(cell) == the_plan.memory


def test_a_sweeps_builds_are_not_what_a_pilot_depends_on() -> None:
    """A pilot's params are its sweep's settings but which builds and models it covers: taking the twin of an A/A
    pair out of a sweep (tests/test_load.py's second round) pilots the build that stays not again."""
    def sweep(builds: list[str]) -> Any:
        config = configuration.resolve({**DEFAULT_CONFIG, "load": {"chat": {"builds": builds}}})
        return plan.make(config).sweeps["chat"]

    both, one = sweep(["cpu", "cpu-rpc"]), sweep(["cpu-rpc"])
    assert both.settings != one.settings and both.pilot_settings == one.pilot_settings
    assert set(both.settings) - set(both.pilot_settings) == {"builds", "models"}
