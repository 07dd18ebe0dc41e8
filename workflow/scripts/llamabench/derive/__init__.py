"""The derived layer: the table vocabulary, pure statistics and what recorded samples mean.

Pure: records and values in, values out. Files are read and written, figures drawn and
processes started at the edges (the rule modules, ``core.records``, ``core.files``,
``core.model_shape``, ``plots``): tests/test_conventions.py checks it. Imports only
``core`` and itself, so an edit to how something is measured or built
never reruns an aggregation, and an aggregation never reaches into a measurement.
"""
