from reprokit.cli import main

raise SystemExit(main())
