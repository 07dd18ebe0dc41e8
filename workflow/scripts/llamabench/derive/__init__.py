"""The derived layer: the table vocabulary, pure statistics and what recorded samples mean.

Imports only ``core`` and itself, so an edit to how something is measured or built
never reruns an aggregation, and an aggregation never reaches into a measurement.
"""
