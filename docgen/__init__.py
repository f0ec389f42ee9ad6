"""The documentation generator: reads spec/, model/, the checker's results and the
traceability links, and writes the Sphinx pages and sphinx-needs objects under
``docs/_generated``.  Sphinx loads it as the extension :mod:`mbmssec.docgen.sphinx_ext`
from ``docs/conf.py``; the pages are written by the ``page_*`` modules."""
