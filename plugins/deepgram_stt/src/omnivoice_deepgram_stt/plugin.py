"""Hook implementations of omnivoice-deepgram-stt.

Nothing is registered until the implementation lands: a plugin registers only what it can do.
"""
