"""grader: the autograder and instructor tooling of llm-from-scratch (the `llmfs` command)."""

__version__ = "0.1.0"
