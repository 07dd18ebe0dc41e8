"""What the builds and models need before anything is measured: compilers, CUDA, synthetic model files.

Imports ``core``, and the process lifecycle of ``measure.processes`` (a build and a quantisation are
children that must stop with their job too).
"""
