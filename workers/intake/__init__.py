"""The alert intake: monitoring webhooks in, incidents started or signalled."""
