"""Let `python -m judgegap` run the CLI (same as the `judgegap` command)."""

from judgegap.cli import main

if __name__ == "__main__":
    main()
