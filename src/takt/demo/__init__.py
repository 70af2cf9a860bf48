"""The demo: a seeded travel-and-outdoor retailer (:mod:`takt.demo.generator`) fed through the real ingestion
path (:mod:`takt.demo.feed`)."""
