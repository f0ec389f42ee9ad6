"""Population-scale simulation of re-keying load, drawing fetch times with the same
strategy functions as the live BM-SC (:mod:`mbmssec.impl.service.spreading`)."""
