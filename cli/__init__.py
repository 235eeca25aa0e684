"""The `ledger` command line: a thin click layer over the public `ledger` API."""

if __name__ == "cli":
    # From the repository root the folder is on sys.path; a `cli` package there would shadow
    # or be shadowed by another project's, so it exists only under its installed name.
    raise ImportError("the ledger command line is installed as `ledger_cli`, not `cli`: import ledger_cli")
