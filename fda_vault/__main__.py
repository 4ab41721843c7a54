"""``python -m fda_vault``."""

from fda_vault.cli import main

if __name__ == "__main__":
    main()
