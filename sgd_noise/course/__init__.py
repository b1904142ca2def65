"""The course: self-checking exercises and their student versions (`exercises`), and the playground of sliders
(`playground`). The names a user needs are imported here."""
from .exercises import self_check, write_student_versions
from .playground import Playground, explore_sweep, landscape_widget

__all__ = ['self_check', 'write_student_versions', 'Playground', 'explore_sweep', 'landscape_widget']
