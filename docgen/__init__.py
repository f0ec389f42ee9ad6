"""The documentation generator: reads spec/, model/, the checker's results and the
traceability links, and writes the Sphinx pages and sphinx-needs objects under
``docs/_generated``.  Loaded by Sphinx as an extension from ``docs/conf.py``."""
