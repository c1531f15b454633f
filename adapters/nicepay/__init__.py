"""The NICEPAY V2 wire: client, exchange, tokens, messages and configuration."""
