"""The measuring library: llama-bench, llama-server and RPC workers run, timed, sampled and stopped.

Imports only ``core`` and itself. A rule that measures is a thin module on top
(``bench_cell``, ``serve_cell``, ``rpc_cell``, ...); the version of what it measures
follows this code (core/code_version.py), never a log message.
"""
