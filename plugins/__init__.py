"""Engine integrations (``mirrorscale.plugins``): Airflow and Prefect glue.

Only modules below this package may import an engine.
"""
