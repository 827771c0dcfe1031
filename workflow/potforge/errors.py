"""Exception families of potforge: one type per kind of failure, messages name the cause."""


class PotforgeError(Exception):
    """Base class of every error potforge raises on purpose."""


class ConfigError(PotforgeError):
    """The campaign configuration or a profile is invalid."""


class StructureError(PotforgeError):
    """A structure file cannot be read, or a structure is unphysical."""


class LabelError(PotforgeError):
    """DFT labelling failed beyond what the failure ladder can absorb."""


class DatasetError(PotforgeError):
    """The labelled dataset is inconsistent or too small for what was asked."""


class TrainingError(PotforgeError):
    """Training, packaging or compiling a model failed."""


class ModelError(PotforgeError):
    """A deployed model is missing, corrupt or does not match the system."""


class ExplorationError(PotforgeError):
    """Molecular dynamics exploration failed."""


class ValidationError(PotforgeError):
    """A validation measurement failed (a fit without a minimum, a relaxation that diverged)."""


class DiskFullError(PotforgeError):
    """A result could not be written: the file system is full (nothing partial is left)."""
