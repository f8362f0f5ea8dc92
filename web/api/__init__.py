"""HTTP resources, one blueprint per module."""
