"""Packaging for nbdev 2: everything is read from settings.ini (nbdev_new's template cannot be fetched offline)."""
import shlex, shutil
from configparser import ConfigParser
from pathlib import Path

import setuptools
from setuptools.command.build_py import build_py

cfg = ConfigParser(delimiters=['='])
cfg.read('settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']

for key in 'version description keywords author author_email'.split():
    assert key in cfg, f'settings.ini is missing "{key}"'

requirements = shlex.split(cfg.get('requirements', ''))
dev_requirements = shlex.split(cfg.get('dev_requirements', ''))
lib_path = cfg['lib_path']



class BuildWithVerdicts(build_py):
    """Ship the committed verdicts and the runs behind them (`verdicts/*.json`, `verdicts/runs/`: the gpu stores and
    the smoke runs' raw results) inside the package, as `sgd_noise/verdicts/`: the notebooks read them
    (`claims.contract.committed_run`, `claim_run` with `SGD_NOISE_RUN=committed`) where no clone is beside the
    package, as after `pip install` or on Colab. In a clone (an editable install) they are read from `verdicts/`."""
    def run(self):
        super().run()
        dst = Path(self.build_lib) / lib_path / 'verdicts'
        for src in [*Path('verdicts').glob('*.json'), *Path('verdicts', 'runs').glob('*')]:
            out = dst / src.relative_to('verdicts')
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out)


setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    description=cfg['description'],
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    keywords=cfg['keywords'],
    author=cfg['author'],
    author_email=cfg['author_email'],
    license='Apache-2.0',
    packages=setuptools.find_packages(include=[lib_path, f'{lib_path}.*']),
    include_package_data=True,
    python_requires=f">={cfg['min_python']}",
    install_requires=requirements,
    extras_require={'dev': dev_requirements},
    entry_points={
        'console_scripts': cfg.get('console_scripts', '').split(),
        'nbdev': [f'{lib_path}={lib_path}._modidx:d'],
    },
    zip_safe=False,
    cmdclass={'build_py': BuildWithVerdicts},
)
