"""Summon: sends bots into online meetings on time."""

__version__ = "0.1.0"
