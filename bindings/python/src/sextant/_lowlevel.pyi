# Type stub of the SWIG-generated proxy module _lowlevel.py (which re-exports the
# extension module _sextant).
from ._sextant import *
