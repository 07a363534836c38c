"""Hook implementations of omnivoice-gemini-live.

Nothing is registered until the implementation lands: a plugin registers only what it can do.
"""
