from fleet.demo.launcher import main

raise SystemExit(main())
