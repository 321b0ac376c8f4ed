"""Layer 2, clients: OpenAI, Azure, local and compatible clients, the registry, and the one call
path (prepare, cache and replay, rate limits, retries, the error boundary, streaming)."""
