"Test-suite settings that must reach the notebook kernels nbval starts (they inherit this environment)."
import os

# Progress bars off under test: a kernel that sends thousands of bar updates while a cell runs can overflow
# the message queue nbval reads after the cell, and nbval then fails the cell with a timeout.
os.environ.setdefault('SGD_NOISE_PROGRESS', '0')
