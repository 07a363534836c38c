"""The gateway: a phone call's audio between a carrier and a provider."""
