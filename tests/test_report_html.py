"""results/report.html from recorded real llama-bench output: every source kind, counts, failures; the first
screen (the command line to run, then the answers by group, each with its interval bar); the big tables folded;
no section or figure without data."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pandas as pd

from conftest import DEFAULT_CONFIG
from llamabench import figures, findings, report_html, stats, summary
from llamabench.core import axes, matrix, questions, records
from llamabench import plots
from test_bench_cell import recorded_cell
from test_stats import UB128, recorded, scaled

DATA = Path(__file__).parent / "data"

BASE = matrix.baseline(DEFAULT_CONFIG["benchmark"])
BASE_ID = matrix.cell_id(BASE)
SOURCE = {"source_kind": "path", "ref": "/opt/llama.cpp", "commit": None}


def render(table: pd.DataFrame, found: list[dict] | None = None, smokes: list[dict] | None = None,
           figure_pngs: list[Path] | None = None) -> str:
    """The page of a run that measured ``table``, with its findings (best settings and sweeps) and ``found``."""
    cell_stats, pairs = stats.cell_stats(table, 0.05), stats.comparisons(table, BASE, 0.05)
    rows = [*findings.best_settings(cell_stats, pairs, BASE), *findings.best_sweeps(cell_stats, pairs, BASE),
            *(found or [])]
    return report_html.render(table=table, cells=cell_stats, pairs=pairs, bandwidth=None,
                              serving=records.frame([], "serving_row"), rpc=records.frame([], "rpc_row"),
                              rpc_smokes=[], found=records.frame(rows, "finding_row"),
                              metrics=records.frame([], "metric_row"), memory=records.frame([], "memory_row"),
                              memory_png=None, used={"ok"}, figure_pngs=figure_pngs or [], baseline=BASE, builds=[],
                              models=[], smokes=smokes or [], sources=[SOURCE], comparison_names=[])


def first_screen(page: str) -> str:
    return page[page.index("<body>"):page.index('<h2 id="environment">')]


def test_report_for_a_path_source_with_two_builds_and_a_failed_smoke_run() -> None:
    cells = [recorded_cell(), recorded_cell("cpu-rpc"),
             recorded_cell("other", status="failed", records=[], error="exit status 1: bad -ctk")]
    smoke = {"build": "cpu", "model": "gemma3-270m", "status": "failed", "error": "llama-cli failed with exit status 1",
             "text": "", "timing_lines": []}
    table = records.frame([row for cell in cells for row in summary.cell_rows(cell)], "summary_row")
    page = render(table, smokes=[smoke])
    screen = first_screen(page)
    # what failed, as counts on the first screen, linking to the list
    assert 'benchmark cell rounds: 2 measured, <span class="failed">1 failed</span>' in screen
    assert '<a href="#failed">which</a>' in screen and 'id="failed"' in page
    assert "path /opt/llama.cpp" in page
    assert "bad -ctk" in page and "Failed: llama-cli failed with exit status 1" in page
    # host and CPU of the cells, not of the machine rendering the report
    assert "<tr><th>host</th><td>bench-node-7</td></tr>" in page
    assert "<tr><th>CPU</th><td>Test CPU 9000</td></tr>" in page
    assert 'id="serving"' not in page and 'id="rpc"' not in page and 'id="memory"' not in page  # none ran
    # one round: nothing beats the defaults, so the command line is the defaults' and those answers are folded
    assert "the defaults: nothing measured here beats them" in screen
    quiet = screen[screen.index('<details class="quiet">'):screen.index("</details>")]
    assert quiet.count("<li>") == 4  # cpu and cpu-rpc, pp and tg
    assert '<a href="#comparisons">evidence</a>' in quiet and 'id="comparisons"' in page
    # a table's cell reads as its setting, the id on hover
    assert f'<span class="setting" title="{BASE_ID}">defaults</span>' in page
    assert page.count("no setting is significantly faster") == 4  # said once: the table holds the numbers


def test_the_first_screen_opens_with_the_command_then_grouped_answers_with_their_intervals(tmp_path: Path) -> None:
    """Recorded rounds of the defaults and ubatch 128, the latter scaled so that it wins generation: its command
    line comes first, then the answers by group, each with an interval bar where its finding has an interval; the
    groups without answers, the tables and the figures without data stay off the page or folded."""
    table = scaled(recorded(), UB128, {1: 1.5, 2: 1.5, 3: 1.5})
    cell_stats = stats.cell_stats(table, 0.05)
    pngs = []
    for name in axes.FIGURES:
        pngs.append(tmp_path / f"{name}.png")
        figures.plot(cell_stats, name, BASE, pngs[-1], tmp_path / f"{name}.svg")
    # only batch (ubatch 128 and 512) is swept: the other figures have nothing to draw and say so
    assert [plots.drawn(p) for p in pngs] == [name == "batch" for name in axes.FIGURES]
    slope = findings.finding(questions.TTFT_PER_PROMPT_TOKEN, "cpu", "gemma3-270m", "TTFT p50 ms per prompt token",
                             "cpu / gemma3-270m: TTFT p50 grows by 1.52 ms per prompt token.", value=1.52,
                             value_ci_low=1.31, value_ci_high=1.73, evidence="figures/serving_ttft.png")
    page = render(table, [slope], figure_pngs=pngs)
    screen = first_screen(page)
    command = screen.index('<pre class="command">')
    assert "-ub 128" in screen[command:screen.index("</pre>", command)]
    assert "ubatch_size=128 (cpu / gemma3-270m): the fastest setting for generation" in screen
    titles = re.findall(r'<h3 class="group"[^>]*>([^<]*)</h3>', screen)
    assert titles == [questions.SETTINGS, questions.WORKLOAD, "What failed or was disturbed"]
    assert command < screen.index(f">{questions.SETTINGS}</h3>")
    # an interval bar per answer with an interval: ratio CIs of the winning setting and sweep, the slope's CI
    found = re.sub(r'<details class="quiet">.*?</details>', "", screen, flags=re.S)
    answers = [li for ul in re.findall(r'<ul class="answers">(.*?)</ul>', found, re.S)
               for li in re.findall(r"<li>(.*?)</li>", ul)]
    assert len(answers) == 3 and all('<svg class="bar"' in a for a in answers)
    assert "tick at 1×" in answers[0] and "1.52 (95 % CI 1.31-1.73)" in answers[2]
    # counts first, the list of noisy cells folded, each cell in words with its id on hover
    noisy = screen[screen.index("<summary>Noisy cells"):]
    assert noisy.index("</summary>") < noisy.index(f'title="{UB128}">ubatch_size=128</span>')
    # the big tables are folded
    for table_of in ("findings", "statistics", "comparisons", "results"):
        section = page[page.index(f'id="{table_of}"'):]
        assert section.index("<details>") < section.index("<table"), table_of
    # no section, heading or figure without data
    assert page.count("<img ") == 1 and 'id="figure-batch"' in page
    assert "figure-threads" not in page and "figure-gpu_layers" not in page and "was not swept" not in page
    assert not re.search(r"<h[23][^>]*>(Serving|RPC|Version|Tuning|Performance over)", page.replace(
        '<h2 id="serving">Serving: latency', "").replace('<h2 id="rpc">RPC: distributed', ""))


def test_the_recommended_line_is_the_cells_own_without_the_workflows_output_flags() -> None:
    """The command a benchmark cell records (tests/data/stall-quiet-*.json, a real llama_bench.measure run) as a
    user would type it: llama-bench's own table instead of the JSON, progress markers and log the workflow reads."""
    recorded = json.loads((DATA / "stall-quiet-0c1e570-cpu-gemma3-270m.json").read_text())["command_line"]
    typed = report_html.as_typed(recorded)
    assert "-o json" in recorded and "--progress" in recorded
    assert shlex.split(typed) == [w for w in shlex.split(recorded) if w not in ("-o", "json", "--progress", "-v")]
