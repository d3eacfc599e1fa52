"""Content protection of segments: pure byte transforms, no I/O (keys come from the caller)."""
