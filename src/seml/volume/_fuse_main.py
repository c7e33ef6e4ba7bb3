"""Entry point of `FuseMount`'s child process (``python -m seml.volume._fuse_main``)."""

import sys

from seml.volume._mount import child_main

if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
