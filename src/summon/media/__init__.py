"""Meeting media: the recorder (progressive audio/video files), the transcribers, and the JSON
artifacts that describe a recording (SPEC §9). Platform-independent: drivers hand decoded
frames and events to the bot session, which feeds these."""
