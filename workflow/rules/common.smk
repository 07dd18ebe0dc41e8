import sys
from pathlib import Path

from snakemake.utils import validate

# The logic lives in the package workflow/scripts/llamabench: scripts find it beside
# themselves (Snakemake puts a script's directory on sys.path), the Snakefile here.
sys.path.insert(0, str(Path(workflow.basedir) / "workflow" / "scripts"))

from llamabench import matrix  # noqa: E402

validate(config, "../schemas/config.schema.yaml")

BUILDS = list(config["builds"])
MODELS = list(config["models"])
BENCH = config["benchmark"]
for _name in BENCH["builds"]:
    if _name not in BUILDS:
        raise ValueError(
            f"benchmark.builds names '{_name}', which is not under builds:"
        )
for _name in BENCH["models"]:
    if _name not in MODELS:
        raise ValueError(
            f"benchmark.models names '{_name}', which is not under models:"
        )
CELLS = matrix.expand(BENCH, BUILDS, MODELS)


def cell_files():
    return [f"results/cells/{b}/{m}/{c}.json" for (b, m, c) in CELLS]


def cell_params(wildcards):
    return CELLS[(wildcards.build, wildcards.model, wildcards.cell)]


def cell_threads(wildcards):
    return cell_params(wildcards)["threads"]


wildcard_constraints:
    build="[A-Za-z0-9_.-]+",
    model="[A-Za-z0-9_.-]+",
    cell="[A-Za-z0-9_.+-]+",
