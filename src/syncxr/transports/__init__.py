"""LLM chat transports (see `base.py`): neutral, used by the LLM report writer and the MLLM judge."""
