"""Layer 4, notebook: magics, displays, widgets, the playground and progress bars. Nothing below
imports this layer; `llmkit.base.hooks` loads its modules by name when IPython asks."""
