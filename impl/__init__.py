"""mbmssec.impl: the concrete system.

``protocols`` holds the wire formats and their cryptography (MIKEY, SRTP/SRTCP, Milenage,
AKA, HTTP Digest AKA, pcap, test vectors); ``service`` the sans-I/O BM-SC and UE cores,
their store, event log and fetch-spreading strategies; ``net`` the aiohttp server and
client, the only code that speaks HTTP.  Nothing here imports the model, the proofs or the
refinement layer.
"""
