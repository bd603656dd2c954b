"""`python -m ailive.bridge.cli`, as the `ailive` script."""
from . import main

main()
