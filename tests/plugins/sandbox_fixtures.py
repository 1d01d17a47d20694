"""Sandbox fixtures (the local Graph API stand-in)."""
