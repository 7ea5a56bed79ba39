"""distill.models: tiny local model factory."""
