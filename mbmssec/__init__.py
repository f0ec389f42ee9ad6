"""mbmssec: an executable, formally checked specification of MBMS key management.

The import package maps onto the repository's top-level folders:
``mbmssec.spec`` (spec/), ``mbmssec.model`` (model/), ``mbmssec.proofs`` (proofs/),
``mbmssec.impl`` (impl/) and ``mbmssec.bench`` (bench/).
"""

__version__ = "0.1.0"
