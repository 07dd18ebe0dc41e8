"""What a measurement's recorded samples mean: energy per token, peak GPU memory, a busy machine.

The sampler (measure/sampler.py) and the system state (measure/system_state.py)
record raw series and snapshots; the summaries read them through here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def peak_vram(samples: Mapping[str, Any] | None) -> float | None:
    """A sampled run's own peak GPU memory (``vram.peak_increase_mib``); None where no GPU was sampled."""
    return ((samples or {}).get("vram") or {}).get("peak_increase_mib")


def per_token(energy: Mapping[str, Any] | None, phase: str | None, tokens: int) -> dict[str, float | None]:
    """Joules per token and mean power over one phase (``prompt`` or ``generation``), ``tokens`` in all."""
    totals = (energy or {}).get("phases", {}).get(phase)
    if not totals or not tokens:
        return {"j_per_token": None, "power_w": None}
    return {"j_per_token": totals["joules"] / tokens,
            "power_w": totals["joules"] / totals["seconds"] if totals["seconds"] else None}


def energy_columns(samples: Mapping[str, Any] | None, rec: Mapping[str, Any]) -> dict[str, Any]:
    """GPU energy per token and mean power of one llama-bench test, from its timed phase (prompt runs for a
    pp test, generation runs for a tg test) over all repetitions; none for a combined pp+tg test."""
    energy = (samples or {}).get("energy")
    n_prompt, n_gen, reps = int(rec.get("n_prompt", 0)), int(rec.get("n_gen", 0)), len(rec.get("samples_ns") or [])
    phase, tokens = ("prompt", n_prompt) if not n_gen else ("generation", n_gen) if not n_prompt else (None, 0)
    found = per_token(energy, phase, tokens * reps)
    return {"energy_j_per_token": found["j_per_token"], "gpu_power_w": found["power_w"],
            "energy_source": energy["source"] if energy and found["j_per_token"] is not None else None}


def busy(state: Mapping[str, Any] | None) -> str | None:
    """Why a cell's machine was not quiet when it started, in a few words, or None."""
    if not state:
        return None
    reasons = [f"{p['name']} ({p['cpu_percent']:.0f} % CPU)" for p in state["busy_processes"]]
    if state["logical_cpus"] and state["loadavg"][0] > state["logical_cpus"]:
        reasons.append(f"load average {state['loadavg'][0]}")
    return ", ".join(reasons) or None


def disturbance_limit(max_share: float, action: str) -> float | None:
    """The share of the CPU above which a round counts as disturbed and is left out of a decision or an aggregate
    (``benchmark.disturbance``); None where the run keeps such rounds, flagged (action ``flag``)."""
    return max_share if action != "flag" else None


def disturbed(interference: Mapping[str, Any] | None, max_share: float) -> str | None:
    """Why a measured window was disturbed (other processes' CPU time, or the VM's steal, above ``max_share``
    of all cores), or None; None too for a record made before the window was measured."""
    if not interference:
        return None
    reasons = [f"{what} took {interference[key]:.0%} of the CPU" for key, what in
               (("others_share", "other processes"), ("steal_share", "the hypervisor (steal)"))
               if interference.get(key, 0) > max_share]
    return "; ".join(reasons) or None
