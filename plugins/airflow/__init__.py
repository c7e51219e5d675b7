"""Airflow 3 integration (``mirrorscale.plugins.airflow``)."""
