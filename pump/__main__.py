from pump.cli import main

raise SystemExit(main())
