"""Hook implementations of omnivoice-openai-realtime.

Nothing is registered until the implementation lands: a plugin registers only what it can do.
"""
