"""Predictors (``mirrorscale.predictors``): volatility, path and resource models."""
