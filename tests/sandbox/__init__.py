"""A local Klaviyo sandbox: the part of Klaviyo's JSON:API the tap uses, over real HTTP on loopback.

Test infrastructure only; start it by hand with `python -m tests.sandbox --help`.
"""
