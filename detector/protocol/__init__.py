"""What the edge and the backend share: the event schema, canonical bytes, signatures and
the hash chain, camera keys, the points rule, and the config base (strict YAML loading).

Imports nothing else of `detector`: both deployables depend on it, it depends on neither.
"""
