"""The NICEPAY V2 wire: client, exchange, signing, tokens, messages, result codes, configuration.

Nothing here knows the engine: the wire is the same whatever records its calls.
"""
