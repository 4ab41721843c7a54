"""``python -m fda_vault``."""

from fda_vault._entry import main

if __name__ == "__main__":
    main()
