"""mbmssec.bench."""
