"""Load sweeps: one server setting offered requests at a series of rates, and how the plan names their cells.

A sweep (config ``load.<name>``) fixes every serving axis (``serving.defaults``
under the sweep's ``settings``) and varies the offered rate. Its levels are the
config's ``rates``, or what each build's pilot found (rule ``load_pilot``, a
checkpoint: derive/load.py's ladder up to saturation, refined near the knee);
the union over builds is measured for every build, in every round, one cell per
(level, round), so rounds and builds pair. A level's cell is an ordinary serving
cell (rule ``load_cell`` measures it like ``serve_cell``) under
``results/load/<sweep>/cells/``, its id the parameters' with the rate.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llamabench.core import axes, matrix

RATE = re.compile(r"(?:^|_)rate-?(?P<rate>[0-9][0-9.e+-]*?)(?=_|$)")


@dataclass(frozen=True)
class Sweep:
    name: str
    builds: tuple[str, ...]
    models: tuple[str, ...]
    params: Mapping[str, Any]  # every serving axis but the rate
    settings: Mapping[str, Any]  # the sweep's config: rates, pilot, objectives, requests, alpha

    @property
    def pilot_settings(self) -> dict[str, Any]:
        """What a build's pilot depends on: the sweep's settings but which builds and models it covers, so that
        adding a build to a sweep, or taking one out, pilots no other build again."""
        return {key: value for key, value in self.settings.items() if key not in ("builds", "models")}

    @property
    def piloted(self) -> bool:
        """Whether a pilot finds the levels (no rates configured)."""
        return not self.settings["rates"]

    def level(self, rate: float) -> dict[str, Any]:
        """The parameters of the level at ``rate`` requests/s."""
        return axes.normalize({**self.params, "rate": level_rate(rate)}, axes.SERVING)

    def cell_id(self, rate: float, round_: int) -> str:
        return matrix.cell_id(self.level(rate), axes.SERVING, round=round_ if round_ > 1 else None)


def level_rate(rate: float) -> float:
    """A level's rate as ids spell it: three significant digits, a float (``rate-0.75``)."""
    return float(f"{rate:.3g}")


def rate_of(cell: str) -> float:
    """The rate a level's cell id names."""
    match = RATE.search(cell)
    if match is None:
        raise ValueError(f"{cell} is not a load level's cell: it names no rate")
    return float(match["rate"])


def sweep(name: str, spec: Mapping[str, Any], config: Mapping[str, Any], builds: list[str], models: list[str],
          ) -> Sweep:
    """A sweep's fixed parameters over serving.defaults: Poisson arrivals unless set, ``requests`` per level, and
    no cap on requests in flight unless ``concurrency`` is set."""
    serving = config["serving"]
    settings = axes.canonical_partial(spec["settings"])
    params = {**axes.canonical_partial(serving["defaults"]), "arrival": "poisson", "concurrency": spec["requests"],
              **settings, "requests": spec["requests"]}
    return Sweep(name, tuple(spec["builds"] or serving["builds"] or builds),
                 tuple(spec["models"] or serving["models"] or models), params, spec)


def pilot_requests(settings: Mapping[str, Any]) -> int:
    """Requests per pilot level: as many as a measured level's unless set (a smaller pilot is quicker, and its
    knee, from noisier percentiles, can sit away from where the rounds find it)."""
    return settings["pilot"].get("requests") or settings["requests"]


def limits(objectives: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Each objective metric's tightest limit: what one request's own value must meet to count in goodput."""
    return {metric: min(found.values()) for metric, found in objectives.items()}
