"""distill.peer: students teaching each other through a learned weighted ensemble."""
