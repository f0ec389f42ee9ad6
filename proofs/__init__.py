"""mbmssec.proofs."""
