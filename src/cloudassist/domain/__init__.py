"""The pure core: Cloud Assistant nouns, statuses and rules, with no I/O (see README.md)."""
