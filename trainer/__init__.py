"""agentracer.trainer: GRPO training of a tracer model on verl."""
