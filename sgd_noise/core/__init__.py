"""The core: datasets (`data`, `readers`), models (`models`, `convnets`), the config (`config`), what a run measures
and records (`metrics`, `records`) and one training run (`training`). The names a user needs are imported here."""
from .config import TrainConfig, pick_preset, validate
from .data import DATASETS, Dataset, load_dataset
from .metrics import RunResult, evaluate
from .models import MODELS, make_model
from .training import get_data, train

__all__ = ['TrainConfig', 'pick_preset', 'validate', 'DATASETS', 'Dataset', 'load_dataset', 'RunResult', 'evaluate',
           'MODELS', 'make_model', 'get_data', 'train']
