"""results/report.html from recorded real llama-bench output: every source kind, counts, failures."""

from __future__ import annotations

from conftest import DEFAULT_CONFIG
from llamabench import findings, report_html, stats, summary
from llamabench.core import matrix, records
from test_bench_cell import recorded_cell

BASE = matrix.baseline(DEFAULT_CONFIG["benchmark"])
BASE_ID = matrix.cell_id(BASE)


def render(cells: list[dict], source: dict, smokes: list[dict] | None = None) -> str:
    table = records.frame([row for cell in cells for row in summary.cell_rows(cell)], "summary_row")
    serving = records.frame([], "serving_row")
    rpc = records.frame([], "rpc_row")
    cell_stats, pairs = stats.cell_stats(table, 0.05), stats.comparisons(table, BASE, 0.05)
    found = records.frame(findings.best_settings(cell_stats, pairs, BASE), "finding_row")
    return report_html.render(table=table, cells=cell_stats, pairs=pairs, bandwidth=None, serving=serving, rpc=rpc,
                              rpc_smokes=[], found=found, metrics=records.frame([], "metric_row"),
                              memory=records.frame([], "memory_row"), memory_png=None,
                              used={"ok"}, figure_pngs=[],
                              baseline=BASE, builds=[], models=[], smokes=smokes or [], sources=[source],
                              comparison_names=[])


def test_report_for_a_path_source_with_two_builds_and_a_failed_smoke_run() -> None:
    cells = [recorded_cell(), recorded_cell("cpu-rpc"),
             recorded_cell("other", status="failed", records=[], error="exit status 1: bad -ctk")]
    source = {"source_kind": "path", "ref": "/opt/llama.cpp", "commit": None}
    smoke = {"build": "cpu", "model": "gemma3-270m", "status": "failed", "error": "llama-cli failed with exit status 1",
             "text": "", "timing_lines": []}
    page = render(cells, source, [smoke])
    header = page[page.index("Cell rounds by outcome"):page.index('<h2 id="environment">')]
    assert "<td>benchmark</td><td>2</td><td>0</td><td class=\"failed\">1</td>" in header
    assert "path /opt/llama.cpp" in page
    assert "bad -ctk" in page and "Failed: llama-cli failed with exit status 1" in page
    # host and CPU of the cells, not of the machine rendering the report
    assert "<tr><th>host</th><td>bench-node-7</td></tr>" in page
    assert "<tr><th>CPU</th><td>Test CPU 9000</td></tr>" in page
    assert "No serving cells in this run" in page
    # it opens with the answers, in sentences from the findings table, each linking to its evidence
    answers = page[page.index('<h2 id="answers">'):page.index("Cell rounds by outcome")]
    assert answers.count("<li>") == 4  # cpu and cpu-rpc, pp and tg
    assert "no setting is significantly faster than the defaults" in answers
    assert '<a href="#comparisons">evidence</a>' in answers and 'id="comparisons"' in page
    # a table's cell reads as its setting, the id on hover
    assert f'<span class="setting" title="{BASE_ID}">defaults</span>' in page
    assert "Conclusions" not in page
    assert page.count("no setting is significantly faster") == 4  # said once: the table holds the numbers
