"""Adapters that put eager execution inside agent frameworks.

Each framework has its own module (``eager_rt.integrations.pydantic_ai``,
``.smolagents``, ``.langgraph``, ``.openai_agents``); importing one never
imports another framework, and each framework is an optional extra.
"""
