"""What runs inside a bot runtime process: one :class:`~summon.runtime.session.BotSession` per
bot (driver, lifecycle, automatic leave, commands) and the process-wide
:class:`~summon.runtime.timing.JoinTimer` that releases staged bots at ``join_at``."""
