"""Built-in plugin: the core's audio converters."""
