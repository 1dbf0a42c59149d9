"""Package metadata read from `settings.ini` (nbdev 2 style). No `pkg_resources`: it is absent from current setuptools."""
import re
from configparser import ConfigParser
from pathlib import Path

import setuptools

cfg = ConfigParser(delimiters=['='])
cfg.read(Path(__file__).parent/'settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']

licenses = {'apache2': ('Apache Software License 2.0', 'OSI Approved :: Apache Software License')}
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable', '6 - Mature', '7 - Inactive']
py_versions = '3.10 3.11 3.12 3.13'.split()
min_python = cfg['min_python']
lic = licenses[cfg['license']]

requirements = cfg.get('requirements', '').split()
test_requirements = cfg.get('test_requirements', '').split()  # what the test suite needs
dev_requirements = test_requirements + cfg.get('dev_requirements', '').split()  # and Jupyter, to author notebooks
compare_requirements = cfg.get('compare_requirements', '').split()
audit_requirements = cfg.get('audit_requirements', '').split()
ray_requirements = cfg.get('ray_requirements', '').split()
dp_requirements = cfg.get('dp_requirements', '').split()
package_data = cfg.get('package_data', '').split()
readme = Path(__file__).parent/'README.md'

setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    description=cfg['description'],
    long_description=readme.read_text(encoding='utf-8') if readme.exists() else cfg['description'],
    long_description_content_type='text/markdown',
    author=cfg['author'], author_email=cfg['author_email'],
    license=lic[0],
    url=cfg['git_url'],
    keywords=cfg['keywords'].split(),
    classifiers=[f"Development Status :: {statuses[int(cfg['status'])]}", f"Intended Audience :: {cfg['audience'].title()}",
                 f'License :: {lic[1]}', f"Natural Language :: {cfg['language'].title()}"]
                + [f'Programming Language :: Python :: {v}' for v in py_versions[py_versions.index(min_python):]],
    packages=setuptools.find_packages(include=[cfg['lib_path'], cfg['lib_path']+'.*']),
    package_data={cfg['lib_path']: package_data},
    include_package_data=True,
    python_requires=f'>={min_python}',
    install_requires=requirements,
    extras_require={'dev': dev_requirements, 'test': test_requirements, 'compare': compare_requirements, 'dp': dp_requirements, 'audit': audit_requirements, 'ray': ray_requirements},
    entry_points={'console_scripts': cfg.get('console_scripts', '').split(),
                  'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
    zip_safe=False,
)
