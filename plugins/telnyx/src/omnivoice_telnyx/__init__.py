"""omnivoice plugin: Telnyx media streaming telephony transport."""
