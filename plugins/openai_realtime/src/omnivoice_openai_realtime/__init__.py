"""omnivoice plugin: OpenAI Realtime voice-to-voice provider."""
