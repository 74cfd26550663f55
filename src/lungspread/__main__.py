import sys

from lungspread.cli.app import main

sys.exit(main())
