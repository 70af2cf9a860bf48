"""Running projections against the log: catch-up, live follow, snapshots, rebuilds."""
