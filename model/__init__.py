"""mbmssec.model."""
