import sys

from srgan_core.cli import main

sys.exit(main())
