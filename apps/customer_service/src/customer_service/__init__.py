"""Customer-service bot: intent detection, knowledge-base answers with citations, hand-off."""

__version__ = "0.1.0"
