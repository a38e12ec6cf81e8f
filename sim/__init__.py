"""convc.sim"""

from .golden import GoldenResult

__all__ = ["GoldenResult"]
