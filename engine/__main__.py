"""`python -m engine animate ...` / `python -m engine serve --stdio` (see engine.cli)."""

from engine.cli import main

raise SystemExit(main())
