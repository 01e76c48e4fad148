"""User-facing errors.

Anything raised as a :class:`GankitError` is a problem with the user's input (config, files,
arguments) rather than a bug: the CLI prints its message on one line and exits with code 2.
"""


class GankitError(Exception):
    """A clear, one-line problem with user input. The CLI exits 2 on it."""


class ConfigError(GankitError):
    """An invalid config file, preset or ``--set`` override."""


class CheckpointError(GankitError):
    """A missing, corrupt, unsafe or incompatible checkpoint."""


class DataError(GankitError):
    """A data set that cannot be found, verified or read."""


class DataUnavailable(DataError):
    """Real data were needed (a metric against real images, a figure of training images)
    but the run's data cannot be read any more (moved, changed, deleted)."""
