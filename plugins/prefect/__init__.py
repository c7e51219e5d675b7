"""Prefect 3 integration (``mirrorscale.plugins.prefect``)."""
