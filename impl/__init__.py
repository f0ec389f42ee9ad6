"""mbmssec.impl."""
