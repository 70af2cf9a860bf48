"""takt: one event log, living customer profiles, and engagement that is relevant and respectful."""

__version__ = "0.1.0"
