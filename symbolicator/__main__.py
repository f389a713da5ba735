from symbolicator.cli import main

raise SystemExit(main())
