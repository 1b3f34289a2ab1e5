from smslab.cli import main

raise SystemExit(main())
