"""Encryption of segments (issue 18): content keys (keys.py), whole-segment AES-128 (aes.py) and
CMAF `cbcs` sample encryption (cbcs.py, nal.py). Pure byte transforms, no I/O."""
