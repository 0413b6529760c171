from memplace.cli import main

raise SystemExit(main())
