"Test-suite settings that must reach the notebook kernels nbval starts (they inherit this environment)."
import os

# Progress bars off under test: a kernel that sends thousands of bar updates while a cell runs can overflow
# the message queue nbval reads after the cell, and nbval then fails the cell with a timeout.
os.environ.setdefault('SGD_NOISE_PROGRESS', '0')
# A claim figure that a reader cannot read (claims.contract.figure_problems) is an error under test, not a warning.
os.environ.setdefault('SGD_NOISE_STRICT_FIGURES', '1')

# Under pytest-xdist (pytest.ini runs one worker per core) each worker, and each notebook kernel it starts, gets
# its share of the cores. Measured on a 2-core machine: the course's small-batch ensembles take as long on one
# thread as on two (benchmarks/sweep_speed.py: 1.60 s vs 1.59 s), so two workers on one thread each do the work
# of two, where two workers on two threads each would fight over the cores.
if os.environ.get('PYTEST_XDIST_WORKER'):
    _threads = str(max(1, (os.cpu_count() or 1) // int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))))
    for _var in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'): os.environ.setdefault(_var, _threads)
