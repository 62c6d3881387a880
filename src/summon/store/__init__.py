"""Persistence port and its SQLAlchemy adapter (SQLite, PostgreSQL)."""
