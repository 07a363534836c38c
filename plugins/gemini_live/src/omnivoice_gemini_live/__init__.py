"""omnivoice plugin: Gemini Live voice-to-voice provider."""
