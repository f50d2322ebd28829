"""The agent desk: a FastAPI app (page, JSON API, OpenAI-compatible routes) over the assistant."""
