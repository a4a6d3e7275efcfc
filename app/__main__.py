"""`python -m app` is `taskexec`."""

from app.cli import main

raise SystemExit(main())
