"""Encryption of segments (issue 18): content keys, whole-segment AES-128 and CMAF `cbcs`. Pure."""
