"""pump: drains Tyk API analytics from Redis into many sinks, losing nothing."""

__version__ = "0.1.0"
__all__ = ["__version__"]
