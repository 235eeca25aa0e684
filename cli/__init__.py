"""The `ledger` command line: a thin click layer over the public `ledger` API."""
