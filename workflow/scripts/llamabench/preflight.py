"""What a run needs from this machine, checked before any job: nvcc and cuBLAS for CUDA builds, glslc and
the Vulkan headers and libraries for Vulkan builds, a GPU to measure on.

Called by the Snakefile layer (not a rule): a dry run still plans every job and
says what is missing; a real run stops before the first job (Snakemake's
``onstart``, which dry runs skip). Where jobs run elsewhere (a cluster), the nodes
have their own nvcc and GPUs, and this machine's say nothing.
"""

from __future__ import annotations

from llamabench.core import backends
from llamabench.core.errors import UserError
from llamabench.core.plan import Plan
from llamabench.measure import gpus
from llamabench.prepare import toolchain, vulkan


def missing_tools(the_plan: Plan) -> str | None:
    """The one sentence for a GPU build whose compiler or libraries are not here: a CUDA build's nvcc or a part of
    its toolkit (cuBLAS), a Vulkan build's glslc, loader, SPIRV-Headers or headers; or None."""
    for build in the_plan.builds.values():
        try:
            if build.cuda:
                toolchain.find_nvcc(build.name)
            elif build.backend is backends.BACKENDS["vulkan"]:
                vulkan.tools(build.name)
        except UserError as err:
            return str(err)
    return None


def gpu_note(the_plan: Plan) -> tuple[str, bool] | None:
    """What the CUDA builds will run on here, and whether that is a warning (no GPU: their cells are skipped)."""
    if the_plan.cluster or not any(b.cuda for b in the_plan.builds.values()) or not toolchain.nvcc_path():
        return None
    found, why = gpus.query(["name"])
    if found:
        return f"CUDA builds will run on {', '.join(g['name'] for g in found)}", False
    return (f"nvcc is here but no GPU ({why}): the CUDA builds are built, and their cells are recorded as skipped "
            "(a CUDA binary without a GPU runs on the CPU)", True)
