"""Hook implementations of omnivoice-elevenlabs-tts.

Nothing is registered until the implementation lands: a plugin registers only what it can do.
"""
