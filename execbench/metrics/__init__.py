"""Metrics: what is measured after every event, and how a run is summarised."""
from .catalog import METRICS, MetricSpec, by_name
from .sampler import Sampler

__all__ = ["METRICS", "MetricSpec", "Sampler", "by_name"]
