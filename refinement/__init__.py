"""Refinement: the abstraction function from implementation states to model states, the
lockstep driver, trace checking of event logs and counterexample replay.  The only library
code that imports both the model (and proofs) and the implementation."""
