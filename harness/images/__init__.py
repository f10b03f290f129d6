"""What the node images hold, per layer (data only): `base/recipe.yaml` (debootstrap),
then one directory per layer above it (`cluster/`, `openstack/`: a Dockerfile and the
files it installs). Each backend builds its own images or boxes from these
(harness/backends/dockerimages.py for Docker)."""
from pathlib import Path

HERE = Path(__file__).parent
LAYERS = ("cluster", "qdevice", "openstack", "instance-ha")   # known layers above the base (a topology lists its own, in order)
