"""Helpers shared by end-to-end tests (a real ``takt serve`` subprocess and its workspace)."""
