"""The lab: its CLI, both runtimes, rendering, provisioning and chaos.

The lab knows where its tree is; the shared library does not guess it. Every program of the
lab (and every test, which imports it) reads the lab's topology file unless told another.
"""

import os

from reviewlab_common.topology import TOPOLOGY_ENV

from reviewlab_lab.paths import TOPOLOGY_PATH

os.environ.setdefault(TOPOLOGY_ENV, str(TOPOLOGY_PATH))
