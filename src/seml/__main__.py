import sys

from seml.cli import main

sys.exit(main())
