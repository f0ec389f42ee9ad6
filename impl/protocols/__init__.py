"""Wire formats and cryptography: MIKEY (RFC 3830), SRTP/SRTCP with MKI (RFC 3711),
Milenage (TS 35.206), AKA (TS 33.102), HTTP Digest AKA (RFC 3310), pcap writing and
reading, and test vector generation.  Pure functions over bytes (the pcap module also
writes and reads capture files); no clock, no global randomness."""
