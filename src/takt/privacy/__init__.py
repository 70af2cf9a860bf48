"""Privacy rights: sealed personal data, export, erasure, audit log."""
