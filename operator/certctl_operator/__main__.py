import sys

from certctl_operator.entrypoint import main

sys.exit(main())
