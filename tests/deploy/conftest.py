"""The image test builds a whole image (debootstrap, buildah: ten minutes and more), so it runs
from `make image` (SEML_IMAGE_TEST=1), which CI runs after `make test`, not within it."""

from __future__ import annotations

import os

collect_ignore = [] if os.environ.get("SEML_IMAGE_TEST") == "1" else ["test_deploy_image.py"]
