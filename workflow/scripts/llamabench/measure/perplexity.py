"""llama-perplexity: a reference's logits over a fixed text, and a setting's KL divergence from them.

Two runs of the same tool (llama.cpp PRs #5076, #5081, #6936):

- the reference: ``-f text --kl-divergence-base FILE`` scores the text's chunks with the reference settings,
  prints each chunk's cumulative perplexity (``[1]40.0263,[2]16.4072,…``) and writes every scored token's full
  distribution to FILE (two bytes per vocabulary entry per token: 512 KiB per token at Gemma's 262k);
- a candidate: ``--kl-divergence-base FILE --kl-divergence`` (no text: its tokens are in FILE) with the changed
  settings prints one cumulative row per chunk (PPL, ln(PPL(Q)/PPL(base)), KL divergence, Δp RMS, same top p)
  and a summary (percentiles of the KLD, the same-top share).

The output is parsed, never trusted by exit status: the tool exits 0 after several failures (too short a text,
a vocabulary that differs from the base file's, fewer than 100 scored tokens: no summary), so a missing row or
summary is the failure, named from the tool's own words where it printed some.
"""

from __future__ import annotations

import math
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

from llamabench.core.status import Status
from llamabench.measure import processes

CHUNK_PPL = re.compile(r"\[(\d+)\]([-+0-9.eEnaif]+),")
FINAL = re.compile(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)")
# One cumulative KLD row: chunk, PPL ± e, ln ratio ± e, KLD ± e, Δp RMS ± e %, same top ± e %.
NUMBER = r"(-?[0-9.]+|-?nan|-?inf)"
ROW = re.compile(rf"^\s*(\d+)\s+{NUMBER}\s+±\s+{NUMBER}\s+{NUMBER}\s+±\s+{NUMBER}\s+{NUMBER}\s+±\s+{NUMBER}"
                 rf"\s+{NUMBER}\s+±\s+{NUMBER}\s+%\s+{NUMBER}\s+±\s+{NUMBER}\s+%\s*$", re.MULTILINE)
SUMMARY = {
    "ppl_q": re.compile(rf"^Mean PPL\(Q\)\s+:\s+{NUMBER}", re.MULTILINE),
    "kld_mean": re.compile(rf"^Mean\s+KLD:\s+{NUMBER}", re.MULTILINE),
    "kld_p99": re.compile(rf"^99\.0%\s+KLD:\s+{NUMBER}", re.MULTILINE),
    "kld_max": re.compile(rf"^Maximum KLD:\s+{NUMBER}", re.MULTILINE),
    "same_top": re.compile(rf"^Same top p:\s+{NUMBER}", re.MULTILINE),
}
# The tool's own words for the failures it exits 0 after, to name in a failed record: its error-level log lines
# (``0.01.437.779 E perplexity: you need at least 512 tokens …``), else any line that says what went wrong.
ERROR_LINES = re.compile(r"^[0-9.]+ E (.*)$", re.MULTILINE)
COMPLAINTS = re.compile(r"^.*(?:you need at least|not enough|vocab|mismatch|failed|error).*$",
                        re.MULTILINE | re.IGNORECASE)


def reference_command(exe: Path, model: Path, text: Path, logits: Path, ctx: int, chunks: int, threads: int,
                      settings: list[str]) -> list[str]:
    """Score ``text`` with the reference settings and keep its logits in ``logits``. ``-b`` equals ``-c``:
    reference and candidates evaluate the same chunks in the same batches."""
    return [str(exe), "-m", str(model), "-f", str(text), "-c", str(ctx), "-b", str(ctx), "--chunks", str(chunks),
            "-t", str(threads), *settings, "--kl-divergence-base", str(logits)]


def candidate_command(exe: Path, model: Path, logits: Path, ctx: int, chunks: int, threads: int,
                      settings: list[str]) -> list[str]:
    return [str(exe), "-m", str(model), "-c", str(ctx), "-b", str(ctx), "--chunks", str(chunks), "-t", str(threads),
            *settings, "--kl-divergence-base", str(logits), "--kl-divergence"]


def run(cmd: list[str], log_path: Path, timeout: float) -> tuple[str, str | None]:
    """The tool's whole output (stdout then stderr), and the error of a run that failed or timed out."""
    tool = Path(cmd[0]).name
    try:
        out = processes.run(cmd, timeout)
        text, error = out.stdout + out.stderr, None
        if out.returncode != 0:
            error = f"{tool} failed with exit status {out.returncode}"
    except subprocess.TimeoutExpired as err:
        text = f"{_text(err.stdout)}{_text(err.stderr)}"
        error = f"{tool} did not finish within {timeout:.0f} s"
    with open(log_path, "a") as handle:
        handle.write(f"$ {shlex.join(cmd)}\n{text}\n{error or 'ok'}\n")
    return text, error


def _text(data: bytes | str | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else data or ""


def _float(text: str) -> float:
    value = float(text)
    return value if math.isfinite(value) else math.nan


def parse_reference(text: str, chunks: int) -> dict[str, Any]:
    """The reference's cumulative perplexity after each chunk and its final estimate; a missing chunk or
    estimate raises ValueError with what the tool said."""
    cumulative = [float(value) for _, value in CHUNK_PPL.findall(text)]
    final = FINAL.search(text)
    if len(cumulative) != chunks or final is None:
        raise ValueError(_complaint(text, f"llama-perplexity printed {len(cumulative)} of {chunks} chunks' "
                                          f"perplexity{'' if final else ' and no final estimate'}"))
    return {"ppl": float(final.group(1)), "ppl_cumulative": cumulative}


def parse_candidate(text: str, chunks: int) -> dict[str, Any]:
    """The cumulative rows (one per chunk) and the summary of a ``--kl-divergence`` run."""
    rows = [{"chunk": int(m[0]), "ppl": _float(m[1]), "kld": _float(m[5]), "same_top_pct": _float(m[9])}
            for m in ROW.findall(text)]
    found = {name: pattern.search(text) for name, pattern in SUMMARY.items()}
    missing = [name for name, match in found.items() if match is None]
    if len(rows) != chunks or missing:
        raise ValueError(_complaint(text, f"llama-perplexity printed {len(rows)} of {chunks} chunk rows"
                                          + (f" and no {', '.join(missing)}" if missing else "")))
    return {"rows": rows, **{name: _float(match.group(1)) for name, match in found.items()}}


def _complaint(text: str, fallback: str) -> str:
    said = ([line.strip() for line in ERROR_LINES.findall(text)]
            or [line.strip() for line in COMPLAINTS.findall(text)][-1:])
    return f"{fallback}: {'; '.join(said)}" if said else fallback


def measured(text: str, error: str | None, parse: Any, chunks: int) -> dict[str, Any]:
    """A run's record fields: the parsed output, or a failure with its reason (status and error)."""
    if error is None:
        try:
            return {"status": Status.OK, "error": None, **parse(text, chunks)}
        except ValueError as err:
            error = str(err)
    return {"status": Status.FAILED, "error": error}
