"""Layer 3, calls: `LLMCall` and batch runs, built on the clients' call path."""
