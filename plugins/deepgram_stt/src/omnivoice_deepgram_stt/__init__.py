"""omnivoice plugin: Deepgram streaming speech-to-text."""
