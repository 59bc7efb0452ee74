"""The exceptions tumorca raises for bad input.  Each message is one line that names the problem."""


class TumorcaError(ValueError):
    """Base of every error tumorca raises for bad input or an impossible request."""


class ParameterError(TumorcaError):
    """A model parameter is unknown, of the wrong type or out of range."""


class LatticeError(TumorcaError):
    """A lattice shape, seed, thread count or state is invalid."""


class ResourceError(TumorcaError):
    """A request needs more memory (or disk) than is available."""


class SweepError(TumorcaError):
    """A sweep file or output directory cannot be used.  One line, naming the file and, where known, the line and
    key."""


class InitialDataError(TumorcaError):
    """A file of initial conditions (tumorca.io.initial) cannot be used.  One line, naming the file and the
    problem (and, for a bad value, where it first occurs)."""
