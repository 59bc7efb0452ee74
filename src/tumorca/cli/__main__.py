"""``python -m tumorca.cli``: the ``tumorca`` command (the tests run it so, with this interpreter)."""
from . import main

main()
