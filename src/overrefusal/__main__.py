"""``python -m overrefusal``."""

from overrefusal.cli import main

main()
