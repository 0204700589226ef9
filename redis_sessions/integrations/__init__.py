"""Adapters that hand the store to agent frameworks (optional extras; the core never imports them).

- :mod:`redis_sessions.integrations.openai_agents`: ``AgentSession``, a ``Session`` of the OpenAI
  Agents SDK (``pip install 'redis-sessions[openai-agents]'``);
- :mod:`redis_sessions.integrations.adk`: ``RedisSessionService``, a ``BaseSessionService`` of
  Google ADK (``pip install 'redis-sessions[adk]'``).
"""
