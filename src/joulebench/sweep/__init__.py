"""Sweeps: a YAML plan of engines x models x workloads, run cell by cell into the results database.

``plan`` reads and checks a plan, ``cells`` expands it into keyed cells grouped by engine start,
``validate`` checks it against the machine or cluster, ``driver`` runs it (resumably) through an
executor: ``local`` (this machine) or ``ray_executor`` (a Ray cluster, rows moved by ``transfer``).
"""
