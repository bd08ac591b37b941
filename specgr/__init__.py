"""specgr: Speculative Generative Recommendation (arXiv 2410.02939), open, batched and tested."""

__version__ = "0.1.0"
