"""Package metadata for rnnbook, read from settings.ini (nbdev 2 layout)."""
from configparser import ConfigParser
import setuptools

cfg = ConfigParser(delimiters=['='])
cfg.read('settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']

requirements = cfg.get('requirements', '').split()
# Extras by purpose: `docs` runs the tour and builds the site (no torch, Keras or NVIDIA packages), `test` adds the
# test stack (Keras 3 and PyTorch's CPU build for parity, cuDNN's headers and library, Voila and Playwright for the
# browser tests), `gpu` CuPy and cuDNN for CUDA 13, `dev` all of them.
extras = {k: cfg.get(f'{k}_requirements', '').split() for k in ('docs', 'test', 'gpu', 'fast')}
extras['dev'] = list(dict.fromkeys(r for k in ('docs', 'test', 'gpu', 'fast') for r in extras[k]))

setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    description=cfg['description'],
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    author=cfg['author'],
    author_email=cfg['author_email'],
    license='Apache-2.0',
    url=cfg['git_url'],
    packages=setuptools.find_packages(include=['rnnbook', 'rnnbook.*']),
    include_package_data=True,
    python_requires='>=' + cfg['min_python'],
    install_requires=requirements,
    extras_require=extras,
    entry_points={'console_scripts': ['rnnbook_demo=rnnbook.demo:main'],
                  'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
    zip_safe=False,
)
