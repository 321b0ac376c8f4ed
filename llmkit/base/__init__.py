"""Layer 1, base: errors, configuration, the model table, templates, the cache, token counts,
results. Imports nothing else of llmkit."""
