"""Data schema, task registry and crash-safe JSONL I/O shared by every stage."""
