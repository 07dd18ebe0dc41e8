"""The vocabulary every layer shares: axes, statuses, the results layout, records, the config and the plan.

Nothing here runs a program or reads the machine; every other package may import it.
"""
