"""Metric definitions and facts read at scrape time; imports no domain package."""
