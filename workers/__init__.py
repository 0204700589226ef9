"""RQ job code for redis-sessions (the expired-session sweeper lands here with issue #3)."""
