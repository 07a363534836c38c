"""omnivoice plugin: Twilio Media Streams telephony transport."""
