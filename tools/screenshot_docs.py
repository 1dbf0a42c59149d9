"""Screenshot the built docs site from `file://` with headless Chromium: `python tools/screenshot_docs.py [--site docs] [--out nbs/images]`.

Writes `docs_<name>.png` for the home page, one page per attack family, an API-heavy page, the CLI page and a
search typed into the home page (Material opens its search with the `q` of the URL), each after the page's
scripts ran (KaTeX, search). Notebook `91_docs.ipynb` shows them.
"""
import argparse
from pathlib import Path

from PIL import Image

from screenshot_report import screenshot

ROOT = Path(__file__).resolve().parents[1]
SHOTS = {  # name: (page, query, height in pixels, rows to keep from the top (None: all))
    'home': ('index.html', '', 900, None),
    'search': ('index.html', '?q=generate_updates', 700, None),
    'updates_leak': ('updates.html', '', 1300, None),
    'extraction': ('extraction.html', '', 1100, None),
    'inversion_math': ('inversion_map.html', '', 1100, None),
    'exfiltration': ('exfiltration.html', '', 1100, None),
    'membership': ('membership_standalone.html', '', 1100, None),
    'api_oracle': ('oracle.html', '', 2600, (1300, 2600)),
    'cli': ('cli.html', '', 1300, None),
}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--site', type=Path, default=ROOT/'docs'); p.add_argument('--out', type=Path, default=ROOT/'nbs'/'images')
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    for name, (page, query, height, rows) in SHOTS.items():
        path = screenshot((a.site/page).resolve().as_uri() + query, a.out/f'docs_{name}.png', height, wait_ms=6000)
        image = Image.open(path)
        if rows: image = image.crop((0, rows[0], image.width, rows[1]))
        image = image.convert('RGB').resize((image.width * 3 // 4, image.height * 3 // 4), Image.LANCZOS)
        image.quantize(colors=128).save(path, optimize=True)  # a screenshot needs few colours: a tenth of the bytes
        print('wrote', path)


if __name__ == '__main__': main()
