"""Quality cells without running anything: llama-perplexity's recorded output parsed (tests/data/perplexity/, see
tests/data/README.md), the cost and its intervals over chunks, the frontier, budgets, and which cells the plan
makes from a config."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import yaml

from llamabench.core import configuration, plan, quality
from llamabench.core.configuration import ConfigError
from llamabench.core.status import Status
from llamabench.derive import quality as cost
from llamabench.measure import perplexity

DATA = Path(__file__).parent / "data" / "perplexity"
CONFIG = yaml.safe_load((Path(__file__).parent / "data" / "config.yaml").read_text())
CHUNKS = 4


def recorded(name: str) -> str:
    return (DATA / f"{name}.txt").read_text()


@pytest.fixture(scope="module")
def reference() -> dict:
    return perplexity.parse_reference(recorded("ref"), CHUNKS)


def measured(name: str, reference: dict) -> dict:
    return cost.cost(perplexity.parse_candidate(recorded(name), CHUNKS), reference["ppl_cumulative"])


def test_the_reference_prints_each_chunks_perplexity_and_its_estimate(reference: dict) -> None:
    assert reference["ppl_cumulative"] == [40.0263, 16.4072, 16.003, 15.9274]
    assert reference["ppl"] == 15.9274


def test_a_text_too_short_is_a_failure_in_the_tools_own_words_though_it_exits_0() -> None:
    found = perplexity.measured(recorded("reference-too-short"), None, perplexity.parse_reference, CHUNKS)
    assert found["status"] == Status.FAILED
    assert "you need at least 512 tokens" in found["error"] and "only 136 tokens" in found["error"]


def test_a_missing_chunk_row_is_a_failure_not_a_short_mean() -> None:
    text = "\n".join(line for line in recorded("kld-q8_0").splitlines() if not line.startswith("   4 "))
    found = perplexity.measured(text, None, perplexity.parse_candidate, CHUNKS)
    assert found["status"] == Status.FAILED and "3 of 4 chunk rows" in found["error"]


def test_the_reference_against_itself_costs_nothing_and_its_ratio_is_not_the_clamped_one(reference: dict) -> None:
    """The printed PPL(Q)/PPL(base) of f16 against itself is 1.000323 (the base file's clamping); from the
    reference's own perplexity it is 1 (to the 4 digits the reference prints)."""
    found = measured("kld-f16", reference)
    assert "1.000323" in recorded("kld-f16")
    assert found["ppl_ratio"] == pytest.approx(1.0, abs=1e-5)  # the reference prints 4 decimals
    assert found["kld_mean"] == pytest.approx(0.0, abs=1e-5) and found["same_top"] == 1.0


def test_q8_0_costs_a_little_and_q4_0_ten_times_more_with_intervals_over_chunks(reference: dict) -> None:
    q8, q4 = measured("kld-q8_0", reference), measured("kld-q4_0", reference)
    # the chunks' own means average to the printed mean (every chunk scores the same number of tokens)
    for found in (q8, q4):
        assert sum(found["chunk_kld"]) / CHUNKS == pytest.approx(found["kld_mean"], rel=1e-3)
        assert found["kld_ci_low"] < found["kld_mean"] < found["kld_ci_high"]
    assert q8["kld_mean"] == pytest.approx(0.009178) and q4["kld_mean"] == pytest.approx(0.128600, rel=1e-3)
    assert q4["kld_ci_low"] > 5 * q8["kld_ci_high"]
    assert q8["same_top_ci_low"] < 0.93898 < q8["same_top_ci_high"] and q4["same_top"] == pytest.approx(0.81102)
    # over 4 chunks the interval is wider than llama-perplexity's per-token ± (0.000563 for q8_0)
    assert (q8["kld_ci_high"] - q8["kld_ci_low"]) / 2 > 0.000563
    assert q4["ppl_ratio"] == pytest.approx(17.9478 / 15.9274, rel=1e-4) and q4["ppl_ratio_ci_low"] > 1


def test_a_budget_drops_by_the_interval_bound_not_the_mean(reference: dict) -> None:
    q8 = measured("kld-q8_0", reference)
    assert cost.within(q8, {"max_kld": 0.05}) is None
    between = (q8["kld_mean"] + q8["kld_ci_high"]) / 2  # above the mean, below the upper bound
    assert "exceeds the quality budget max_kld" in cost.within(q8, {"max_kld": between})
    assert "under the quality budget min_same_top" in cost.within(q8, {"min_same_top": 0.94})
    assert cost.within(q8, {"min_same_top": 0.9}) is None


def test_the_frontier_keeps_what_nothing_beats_in_both() -> None:
    points = [(0.0, 1.0), (0.009, 1.02), (0.13, 1.01), (0.05, None)]
    assert cost.pareto(points) == [True, True, False, False]


def resolved(changes: dict) -> dict:
    config = copy.deepcopy(CONFIG)
    for key, value in changes.items():
        section, _, name = key.partition(".")
        if name:
            config.setdefault(section, {})[name] = value
        else:
            config[section] = value
    return configuration.resolve(config)


def cells(config: dict) -> dict:
    return {key: found for key, found in plan.make(config).quality.items()}


def test_the_grid_s_quality_settings_become_cells_against_the_defaults_reference() -> None:
    config = resolved({"benchmark.groups": {"kv": {"cache_type_k": ["f16", "q8_0"], "cache_type_v": ["q8_0"]},
                                            "threads": {"threads": [1]}}})
    found = cells(config)
    build, model = config["benchmark"]["builds"][0], next(iter(config["models"]))
    ids = sorted(cid for (_, _, cid) in found)
    assert ids == ["ngl99_fa-auto_ctk-f16_ctv-q8-0", "ngl99_fa-auto_ctk-q8-0_ctv-q8-0", "reference"]
    ref = found[(build, model, quality.REFERENCE)]
    assert dict(ref.params) == quality.reference(config["benchmark"]) and ref.path.endswith("/reference.json")
    # threads change speed only: no quality cell; each cell's speed is its own grid cell's
    q8 = found[(build, model, "ngl99_fa-auto_ctk-q8-0_ctv-q8-0")]
    assert len(q8.speed_cells) == 1 and "ctk-q8-0_ctv-q8-0" in q8.speed_cells[0] and "t2_" in q8.speed_cells[0]


def test_no_quality_axis_swept_means_no_reference_either() -> None:
    assert cells(resolved({"benchmark.groups": {"threads": {"threads": [1, 2]}}})) == {}
    assert cells(resolved({"quality.enabled": False})) == {}  # the default grid's q8_0 K/V, measured for speed only


def test_quality_cells_and_tuning_candidates_add_settings() -> None:
    config = resolved({"benchmark.groups": {}, "quality.cells": [{"cache_type_k": "q4_0", "cache_type_v": "q4_0"}]})
    assert {cid for (_, _, cid) in cells(config)} == {"reference", "ngl99_fa-auto_ctk-q4-0_ctv-q4-0"}
    tuned = resolved({"benchmark.groups": {}, "tune": {"kv": {
        "objective": {"metric": "tg"}, "space": {"cache_type_k": ["f16", "q8_0"], "cache_type_v": ["f16", "q8_0"]}}}})
    assert {cid for (_, _, cid) in cells(tuned)} >= {"reference", "ngl99_fa-auto_ctk-q8-0_ctv-q8-0"}


@pytest.mark.parametrize("changes, words", [
    ({"benchmark.groups": {"kv": {"cache_type_v": ["q8_0"], "flash_attn": ["off"]}}},
     "benchmark.groups.kv: cache_type_v q8_0 with flash_attn off: llama.cpp quantises the V cache only with flash"),
    ({"quality.cells": [{"cache_type_v": "q4_0", "flash_attn": 0}]}, "quality.cells[0]: cache_type_v q4_0"),
    ({"quality.builds": ["nope"]}, "quality.builds names 'nope'"),
    ({"tune": {"t": {"space": {"threads": [1, 2]}, "quality": {"max_kld": 0.1}}}},
     "tune.t.quality: a quality budget needs candidates that change a quality axis"),
    ({"quality.enabled": False,
      "tune": {"t": {"space": {"cache_type_k": ["f16", "q8_0"]}, "quality": {"max_kld": 0.1}}}},
     "tune.t.quality: a quality budget needs quality cells, and quality.enabled is false"),
])
def test_bad_quality_settings_name_the_key_before_any_job(changes: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
        resolved(changes)


def test_a_text_shorter_than_two_chunks_is_named(tmp_path: Path) -> None:
    short = tmp_path / "short.txt"
    short.write_text("x" * 100)
    with pytest.raises(ConfigError, match="quality.text: .* has 100 bytes, fewer than the 2 x quality.ctx_size"):
        resolved({"quality.text": str(short)})


def test_the_logits_size_is_what_the_reference_wrote() -> None:
    """266,346,484 bytes at Gemma's 262,144 entries, -c 256, 4 chunks (tests/data/README.md): the estimate
    is within its small header."""
    assert math.isclose(quality.logits_bytes(262_144, 256, 4), 266_346_484, rel_tol=1e-4)


def test_a_ladder_rung_is_measured_against_its_source_models_reference() -> None:
    """A quantized model's reference settings are a cell too (what the quantisation costs), against the model it
    was quantised from, whose reference is made even where that model has no cell of its own."""
    config = resolved({"models": {**CONFIG["models"], "q4": {"kind": "quantized", "from": "gemma3-270m",
                                                              "type": "Q4_0"}},
                       "benchmark.groups": {}, "quality.models": ["q4"]})
    found = cells(config)
    build = config["benchmark"]["builds"][0]
    assert set(found) == {(build, "gemma3-270m", "reference"), (build, "q4", "ngl99_fa-auto_ctk-f16_ctv-f16")}
    rung = found[(build, "q4", "ngl99_fa-auto_ctk-f16_ctv-f16")]
    assert rung.against.model == "gemma3-270m" and not rung.reference


def test_a_ladder_needs_real_weights_to_quantise() -> None:
    models = {**CONFIG["models"], "fake": {"kind": "synthetic", "like": "gemma3-270m"},
              "q4": {"kind": "quantized", "from": "fake", "type": "Q4_0"}}
    with pytest.raises(ConfigError, match="models.q4.from names a synthetic model"):
        resolved({"models": models})


def test_a_named_reference_model_measures_what_the_quantisation_costs() -> None:
    models = {**CONFIG["models"],
              "mine": {"kind": "path", "path": "/models/q4.gguf", "quality_reference": "gemma3-270m"}}
    config = resolved({"models": models, "benchmark.groups": {}, "quality.models": ["mine"]})
    rung = cells(config)[(config["benchmark"]["builds"][0], "mine", "ngl99_fa-auto_ctk-f16_ctv-f16")]
    assert rung.against.model == "gemma3-270m"
    with pytest.raises(ConfigError, match="models.mine.quality_reference: name another model"):
        resolved({"models": {**models, "mine": {**models["mine"], "quality_reference": "mine"}}})


def test_a_source_of_another_vocabulary_is_named_by_its_key() -> None:
    """The bundled Gemma's 262,144 tokens against a synthetic llama's 1,024 (tests/test_synthetic.py's shape)."""
    spec = {"kind": "path", "path": "/models/q4.gguf", "quality_reference": "gemma3-270m"}
    why = quality.vocabulary_problem("mine", spec, 1024, 262_144)
    assert why.startswith("models.mine.quality_reference: gemma3-270m has a vocabulary of 262144 tokens")
    assert quality.vocabulary_problem("mine", spec, 262_144, 262_144) is None
    rung = {"kind": "quantized", "from": "gemma3-270m", "type": "Q4_0"}
    assert quality.vocabulary_problem("q4", rung, 1024, 262_144).startswith("models.q4.from:")
