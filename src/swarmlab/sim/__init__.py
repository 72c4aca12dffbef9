"""Scripted agents for demos, load and fault tests."""
