import sys

from compressai_rdc.cli import main

sys.exit(main())
