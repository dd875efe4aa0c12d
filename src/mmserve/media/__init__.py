"""Safe ingestion of user media (fetch, decode, bound) and encoding of generated media."""
