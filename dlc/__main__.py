import sys

from dlc.cli import main

sys.exit(main())
