"""The fleet: the agent that owns this host's bot slots, its runtime processes, and the
scheduler loop that claims due bots for it."""
