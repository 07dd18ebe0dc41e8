"""The sampler beside a real llama-bench: host series always, GPU series and energy where NVML finds a GPU (never
in CI), phases from llama-bench's own --progress markers, and a thread that is stopped on every way out."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from llamabench.core import phases
from llamabench.derive import samples as sampled
from llamabench.measure import llama_bench, sampler
from test_bench_cell import SMALL

pytestmark = pytest.mark.slow  # builds, runs llama.cpp binaries or Snakemake

NO_GPU = shutil.which("nvidia-smi") is None


def sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "sampler" and t.is_alive()]


@pytest.fixture(scope="module")
def real_run(bin_dir: Path, gemma: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One real cell with GPU sampling asked for: on a host without a GPU the sampler says why."""
    log = tmp_path_factory.mktemp("sampler") / "cell.log"
    cmd = llama_bench.command(bin_dir / "llama-bench", gemma, SMALL, delay=0)
    return llama_bench.measure(cmd, log, gpus=True, interval_s=0.05)


def test_a_real_run_is_sampled_between_llama_benchs_phase_markers(real_run: dict) -> None:
    assert real_run["status"] == "ok", real_run.get("error")
    samples = real_run["samples"]
    host = samples["host"]
    assert len(host["t"]) >= 3 and len(host["cpu_percent"]) == len(host["t"]) == len(host["cpu_mhz"])
    assert host["t"] == sorted(host["t"]) and max(host["cpu_percent"]) > 0
    labels = [m["label"] for m in samples["marks"]]
    assert labels[0] == phases.BEFORE and labels[-1] == phases.END
    seen = [phases.phase_of(label) for label in labels[1:-1]]
    # SMALL: a pp16 and a tg4 test, 2 repetitions each, a warm-up before each
    assert seen.count("prompt") == 2 and seen.count("generation") == 2 and seen.count("load") == 2
    seconds = phases.phase_seconds([(m["label"], m["t"], None) for m in samples["marks"]])
    assert abs(sum(seconds.values()) - (samples["marks"][-1]["t"] - samples["marks"][0]["t"])) < 1e-6
    assert not sampler_threads()


@pytest.mark.skipif(not NO_GPU, reason="this machine has an NVIDIA driver")
def test_without_a_gpu_the_record_says_why_and_has_no_energy(real_run: dict) -> None:
    samples = real_run["samples"]
    assert samples["gpus"] == [] and samples["energy"] is None and samples["vram"] is None
    assert "NVML is not available" in samples["gpu_error"] and "no NVIDIA driver" in samples["gpu_error"]


def test_a_cpu_run_does_not_sample_gpus(bin_dir: Path, gemma: Path, tmp_path: Path) -> None:
    result = llama_bench.measure(llama_bench.command(bin_dir / "llama-bench", gemma, SMALL, delay=0),
                                tmp_path / "cell.log", gpus=False)
    assert result["samples"]["gpu_error"].startswith("not sampled") and result["samples"]["gpus"] == []


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_the_thread_stops_when_the_block_fails(error: type[BaseException]) -> None:
    with pytest.raises(error):
        with sampler.sampling(0.01, gpus=True) as running:
            time.sleep(0.05)
            assert running.running() and sampler_threads()
            raise error()
    assert not running.running() and not sampler_threads()
    assert running.marks[-1][0] == phases.END


def test_a_failing_llama_bench_stops_the_sampler(bin_dir: Path, gemma: Path, tmp_path: Path) -> None:
    params = {**SMALL, "cache_type_k": "nonsense"}
    result = llama_bench.measure(llama_bench.command(bin_dir / "llama-bench", gemma, params, delay=0),
                                tmp_path / "cell.log", gpus=True)
    assert result["status"] == "failed" and result["samples"]["marks"][-1]["label"] == phases.END
    assert not sampler_threads()


def test_energy_per_phase_from_real_markers(real_run: dict) -> None:
    """The real run's markers and times, with a GPU of known constant power (50 W, no counter) and one whose
    counter ran at 200 W: each phase gets power x its duration, and J/token divides by its tokens."""
    samples = real_run["samples"]
    start = samples["start_epoch"]
    marks = [(m["label"], start + m["t"], [None, 200 * m["t"] * 1000]) for m in samples["marks"]]
    times = samples["host"]["t"]
    gpus = [{"energy_counter": False, "series": {"t": times, "power_w": [50.0] * len(times)}},
            {"energy_counter": True, "series": {"t": [], "power_w": []}}]
    energy = sampler.energy_by_phase(marks, gpus, start)
    assert energy["source"] == sampler.SAMPLED_POWER  # one GPU without a counter: say so
    seconds = phases.phase_seconds(marks)
    for phase, totals in energy["phases"].items():
        assert totals["seconds"] == pytest.approx(seconds[phase], abs=1e-3)
        assert totals["joules"] == pytest.approx(250 * seconds[phase], rel=1e-3, abs=1e-3)
    tokens = SMALL["n_gen"] * SMALL["repetitions"]
    found = sampled.per_token(energy, "generation", tokens)
    assert found["power_w"] == pytest.approx(250, rel=1e-3)
    assert found["j_per_token"] == pytest.approx(250 * seconds["generation"] / tokens, rel=1e-3)


def test_sampled_power_is_held_from_each_sample_to_the_next() -> None:
    times, watts = [0.0, 1.0, 2.0], [10.0, 20.0, None]
    assert sampler.integrate(times, watts, 0.5, 1.5) == pytest.approx(10 * 0.5 + 20 * 0.5)
    assert sampler.integrate(times, watts, -1.0, 0.0) == pytest.approx(10.0)  # before the first sample
    assert sampler.integrate(times, watts, 3.0, 4.0) == pytest.approx(20.0)  # a missing reading changes nothing
    assert sampler.integrate([], [], 0.0, 1.0) == 0.0


def test_vram_is_the_increase_over_what_was_used_before() -> None:
    gpus = [{"index": 0, "series": {"memory_used_mib": [500.0, 2500.0, 1800.0]}},
            {"index": 1, "series": {"memory_used_mib": [None, 10.0, 110.0]}}]
    found = sampler.vram(gpus)
    assert found["peak_increase_mib"] == 2100.0
    assert found["gpus"] == [{"index": 0, "before_mib": 500.0, "peak_mib": 2500.0},
                             {"index": 1, "before_mib": 10.0, "peak_mib": 110.0}]


@pytest.mark.parametrize(("chosen", "index", "uuid", "seen"), [
    (None, 3, "GPU-abc", True), ("0,2", 2, "GPU-abc", True), ("0,2", 1, "GPU-abc", False),
    ("GPU-ab", 5, "GPU-abc", True), ("GPU-x", 5, "GPU-abc", False)])
def test_only_the_gpus_cuda_sees_are_sampled(monkeypatch: pytest.MonkeyPatch, chosen: str | None, index: int,
                                             uuid: str, seen: bool) -> None:
    if chosen is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", chosen)
    assert sampler.visible(index, uuid) is seen
