from __future__ import annotations

from keyledger.cli import main

main()
