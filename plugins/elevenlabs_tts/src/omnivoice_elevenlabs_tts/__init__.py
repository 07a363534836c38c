"""omnivoice plugin: ElevenLabs streaming text-to-speech."""
