"""The main job (``python -m mirrorscale.demo``, ``scripts/demo.sh``): mirrorscale shown on the example pipelines.

The Prefect examples of ``dags_examples/prefect`` run a schedule of inputs that
grow, shrink and spike, first with every task held to its own static memory
setting and then with mirrorscale in mode ``enforce``; the demo prints one line
per pipeline run and a summary table, and writes a self-contained HTML report.
See :mod:`mirrorscale.demo.cli`. Nothing here is imported by the rest of mirrorscale.
"""
