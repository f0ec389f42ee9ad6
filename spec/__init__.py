"""mbmssec.spec."""
