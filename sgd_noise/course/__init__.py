"""The course: exercises graded by hidden tests, their student versions and the instructor's nbgrader folder
(`exercises`), and the playground of sliders (`playground`). The names a user needs are imported here."""
from .exercises import answered, expect, write_course, write_student_versions
from .playground import Playground, explore_sweep, landscape_widget

__all__ = ['answered', 'expect', 'write_course', 'write_student_versions', 'Playground', 'explore_sweep',
           'landscape_widget']
