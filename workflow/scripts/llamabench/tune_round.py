"""Checkpoint ``tune_round``: one decision of a tuning study, after each of its rounds.

Decision 0 opens the study (the first race, the candidates of round 1);
decision r reads every cell the study has measured so far and says what round r
dropped, whether the study has ended and why, and which candidates round r + 1
measures (derive/race.py decides). The plan turns those candidates into cells
(``Plan.tune_cells``), so a rerun resumes at the first decision or cell missing,
and nothing is measured twice. The last decision adds what to run: the winner's
llama-bench command line as it was measured, and a llama-server command line
with its flags as this build's server spells them (its ``--help`` decides, as
for every cell).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from llamabench.core import axes, matrix, plan, quality, records, tuning
from llamabench.core.errors import Unsupported
from llamabench.core.status import Status
from llamabench.derive import quality as cost
from llamabench.derive import race, samples
from llamabench.measure import processes


def tune_round(smk: Any) -> None:
    the_plan = plan.of(smk.config)
    study = the_plan.studies[smk.wildcards.study]
    found: dict[str, Any] = {"study": study.name, "build": smk.wildcards.build, "model": smk.wildcards.model}
    if int(smk.wildcards.round) == 0:
        costs = candidate_costs(the_plan, study.name, smk.wildcards.build, smk.wildcards.model)
        budget = quality.budget(study.settings)
        over = {c: f"quality: {why}" for c, row in costs.items()
                if (why := row.get("error") or cost.within(row, budget))}
        found["state"] = race.start(study, over, {"budget": budget, "costs": costs} if budget else None)
    else:
        previous = records.read(smk.input.previous, "tune_round")["state"]
        cells = records.read_each(smk.input.cells, race.cell_kind)
        found["state"] = race.advance(study, previous, race.observations(
            cells, study.settings["objective"], samples.disturbance_limit(smk.params.max_share, smk.params.action)))
        winner = (found["state"]["ended"] or {}).get("winner")
        if winner:
            measured = next(cell for p, cell in cells.items() if tuning.split(p.stem)[0] == winner)
            found["commands"] = commands(study.kind, study.by_id[winner].params, study.by_id[study.reference].params,
                                         measured, records.read(smk.input.build, "build"), the_plan.config)
    records.write(smk.output[0], "tune_round", found)


QUALITY_FIELDS = ("kld_mean", "kld_ci_low", "kld_ci_high", "same_top", "same_top_ci_low", "same_top_ci_high",
                  "ppl_ratio")


def candidate_costs(the_plan: plan.Plan, study: str, build: str, model: str) -> dict[str, dict[str, Any]]:
    """Each candidate's quality cost, from the quality cell of its settings (a study with a quality budget reads
    them first); a candidate whose quality cell failed has its reason instead of numbers: not shown within the
    budget, it is dropped with that reason."""
    if not quality.budget(the_plan.studies[study].settings):
        return {}
    found = {}
    for candidate, cell in the_plan.candidate_quality(study, build, model).items():
        record = records.read(cell.path, "quality_cell")
        found[candidate] = ({name: record.get(name) for name in QUALITY_FIELDS} if record["status"] == Status.OK else
                            {"error": f"its quality cell {record['status']}: {record['error']}"})
    return found


def commands(kind: str, params: Mapping[str, Any], reference: Mapping[str, Any], measured: Mapping[str, Any],
             build: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, str]:
    """What to run with the winner's settings: the command line it was measured with, the other tool's with the
    same settings as this build spells them (a server's context and slots from ``serving.defaults``; a served
    winner's llama-bench workload its prompt and generation), the config that makes them the defaults, and the
    flags, as this build's llama-server spells them, of what the winner changes from the defaults (``reference``)."""
    bin_dir = Path(build["bin_dir"])
    server = bin_dir / build["binaries"]["server"]
    shared = {name: axes.value(params, name, kind) for name in axes.SERVER_SHARED}
    if kind == axes.SERVING:
        server_line = measured["serving"]["command_line"]
        words = shlex.split(server_line)
        exe = bin_dir / build["binaries"]["bench"]
        bench = matrix.bench_partner(params, config["benchmark"])
        bench_line = _line(exe, words[words.index("-m") + 1], axes.BENCHMARK, axes.LLAMA_BENCH, bench, [])
    else:
        bench_line = measured["llama_bench"]["command_line"]
        words = shlex.split(bench_line)
        served = axes.normalize({**axes.canonical_partial(config["serving"]["defaults"]), **shared}, axes.SERVING)
        server_line = _line(server, words[words.index("-m") + 1], axes.SERVING,
                            axes.LLAMA_SERVER, served, ["--host", "127.0.0.1", "--port", "8080"])
    said = {"llama_bench": bench_line, "llama_server": server_line,
            "config": yaml.safe_dump({"benchmark": {"defaults": shared}, "serving": {"defaults": shared}},
                                     sort_keys=False)}
    changed = [name for name in axes.SERVER_SHARED
               if axes.value(params, name, kind) != axes.value(reference, name, kind)]
    help_text = processes.help_text(server)
    try:
        said["flags"] = shlex.join([word for name in changed for word in axes.spelling(
            name, axes.LLAMA_SERVER, help_text).arguments(name, shared[name], axes.LLAMA_SERVER)])
    except Unsupported:
        pass  # the server's line says why
    return said


def _line(exe: Path, model: str, kind: str, tool: str, params: Mapping[str, Any], extra: list[str]) -> str:
    """``exe`` with ``params`` as this build's tool spells them (its ``--help`` decides, as for every cell)."""
    try:
        flags = axes.arguments(params, kind, tool, processes.help_text(exe))
        return shlex.join([str(exe), "-m", model, *extra, *flags])
    except Unsupported as err:
        return f"# this build's {tool} cannot take these settings: {err}"
