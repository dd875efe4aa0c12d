"""transformers chat and vision-language models: the engine, constrained decoding, sampling, streaming text."""
