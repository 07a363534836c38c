"""Hook implementations of omnivoice-twilio.

Nothing is registered until the implementation lands: a plugin registers only what it can do.
"""
