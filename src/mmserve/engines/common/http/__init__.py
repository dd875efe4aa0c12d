"""HTTP/1.1 to the servers engines call: hosted providers (upstream engines) and vLLM's server (unix socket).

:mod:`.wire` is a connection and its answers, :mod:`.pool` one server's keep-alive connections.
"""
