"""``python -m fda_vault``."""

from fda_vault.entry import main

if __name__ == "__main__":
    main()
