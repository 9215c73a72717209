"""tuibatch: run a JSONL batch through Gemini agents and models, crash-safe, from the terminal."""

__version__ = "0.1.0"
