"""judgegap: can a language model judge answers better than it generates them?

The public API is re-exported here; implementation lives in one folder per concern
(data, metrics, backends, prompts, experiments, store, report).
"""

from judgegap.errors import JudgegapError

__version__ = "0.1.0"

__all__ = ["JudgegapError", "__version__"]
