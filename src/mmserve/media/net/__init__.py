"""Network: the SSRF-safe fetcher and the address policy it enforces."""
