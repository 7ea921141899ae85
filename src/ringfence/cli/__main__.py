"""``python -m ringfence.cli``."""

from ringfence.cli.main import main

main()
