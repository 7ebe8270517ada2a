"""Customer search: query parsing, the reference semantics, and the in-memory index."""
